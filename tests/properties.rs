//! Property tests (proptest) of the wire format and of the session core.
//!
//! - Wire: every valid request, generated from the field rules, formats and parses back to
//!   itself; breaking any one field makes it invalid; `i:` and `s:` messages have the documented
//!   shape and parse back into the names and addresses they were written from.
//! - Core: a [`Shard`] is driven with generated request sequences from four addresses (IPv4,
//!   IPv6, IPv4-mapped, and a second port behind the first IPv4) on a fake clock, next to a small
//!   model of the protocol written from `docs/protocol.md`. Every reply to a request must be the
//!   one the model predicts, and on every reply, timeouts included: a session never holds more
//!   than its max players, names are unique in a session, the host (first name of `i:`) is the
//!   first player in join order, and every player of a starting session is in every other
//!   player's start message.
//! - Core, batched: datagrams handed over in batches (`Shard::handle_datagrams`, the path a worker
//!   takes) get exactly the replies, in the same order, that the same datagrams get one at a time.
//!
//! Time is `Instant::now()` plus offsets: nothing sleeps. Case counts are kept modest so that the
//! whole file runs in a few seconds in debug builds.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::sample::select;
use rabid_punch::core::{CoreConfig, Incoming, Shard};
use rabid_punch::outbox::Outbox;
use rabid_punch::wire::{parse, write_info, write_start, Kind, ParseError, Request};

// ------------------------------------------------------------------------------- wire format

/// A request as owned fields, so that proptest can generate and shrink it.
#[derive(Clone, Debug)]
struct Fields {
    letter: char,
    session: String,
    player: String,
    max_players: u8,
    password: Option<String>,
}

impl Fields {
    /// The text a client sends, from the field rules (not from the crate's code).
    fn text(&self) -> String {
        let mut text = format!("{}:{}:{}", self.letter, self.session, self.player);
        if self.letter == 'h' {
            text += &format!(":{}", self.max_players);
        }
        if let (Some(w), 'h' | 'c') = (&self.password, self.letter) {
            text += &format!(":{w}");
        }
        text
    }

    /// The request the parser must return for [`text`](Self::text).
    fn request(&self) -> Request<'_> {
        let password = self.password.as_deref();
        let kind = match self.letter {
            'h' => Kind::Host {
                max_players: self.max_players,
                password,
            },
            'c' => Kind::Connect { password },
            'p' => Kind::Ping,
            'k' => Kind::Kick,
            'x' => Kind::Exit,
            's' => Kind::Start,
            _ => Kind::Confirm,
        };
        Request {
            session: &self.session,
            player: &self.player,
            kind,
        }
    }
}

fn session_name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9]{1,10}"
}

fn player_name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9]{1,12}"
}

/// Any valid request.
fn valid_fields() -> impl Strategy<Value = Fields> {
    (
        select(vec!['h', 'c', 'p', 'k', 'x', 's', 'y']),
        session_name(),
        player_name(),
        2u8..=12,
        proptest::option::of(player_name()),
    )
        .prop_map(|(letter, session, player, max_players, password)| Fields {
            letter,
            session,
            player,
            max_players,
            // Only `h` and `c` carry a password.
            password: password.filter(|_| matches!(letter, 'h' | 'c')),
        })
}

/// A field that breaks the rules: empty, too long, or with a character outside `[A-Za-z0-9]`.
fn bad_name(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        proptest::string::string_regex(&format!("[A-Za-z0-9]{{{},{}}}", max + 1, max + 8))
            .expect("a valid regex"),
        "[A-Za-z0-9]{0,4}[^A-Za-z0-9:\n\r][A-Za-z0-9]{0,4}",
    ]
}

/// A `M` that breaks the rules.
fn bad_max() -> impl Strategy<Value = String> {
    prop_oneof![
        select(vec![
            "", "0", "1", "13", "02", "+4", "-4", "4 ", "x", "100", "012"
        ])
        .prop_map(String::from),
        (13u32..100_000).prop_map(|m| m.to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn valid_requests_round_trip(fields in valid_fields(), newline in select(vec!["", "\n", "\r\n"])) {
        let text = fields.text() + newline;
        prop_assert_eq!(parse(text.as_bytes()), Ok(fields.request()), "{:?}", text);
    }

    #[test]
    fn breaking_one_field_makes_a_request_invalid(
        fields in valid_fields(),
        which in 0usize..4,
        bad_session in bad_name(10),
        bad_player in bad_name(12),
        bad_m in bad_max(),
    ) {
        let mut broken = fields.clone();
        let text = match which {
            0 => { broken.session = bad_session; broken.text() }
            1 => { broken.player = bad_player; broken.text() }
            2 => { broken.letter = 'h'; format!("h:{}:{}:{bad_m}", fields.session, fields.player) }
            // A field after the last one a command can have (for `h` and `c`, the password).
            _ => {
                if matches!(broken.letter, 'h' | 'c') {
                    broken.password = Some("W".into());
                }
                format!("{}:extra", broken.text())
            }
        };
        prop_assert_eq!(parse(text.as_bytes()), Err(ParseError::Invalid), "{:?}", text);
    }

    #[test]
    fn info_messages_have_their_shape_and_parse_back(
        names in proptest::collection::vec(player_name(), 1..=12),
    ) {
        let mut buf = Vec::new();
        write_info(&mut buf, names.iter().map(String::as_str));
        let text = String::from_utf8(buf).expect("info is text");
        let body = text.strip_prefix("i:");
        prop_assert!(body.is_some(), "{:?}", text);
        let parsed: Vec<&str> = body.unwrap_or_default().split(':').collect();
        prop_assert_eq!(parsed, names.iter().map(String::as_str).collect::<Vec<_>>());
    }

    #[test]
    fn start_messages_have_their_shape_and_parse_back(
        own_port in any::<u16>(),
        peers in proptest::collection::vec((player_name(), socket_addr()), 0..=11),
    ) {
        let mut buf = Vec::new();
        write_start(&mut buf, own_port, peers.iter().map(|(n, a)| (n.as_str(), *a)));
        let text = String::from_utf8(buf).expect("start message is text");
        let parsed = parse_start(&text);
        prop_assert!(parsed.is_some(), "not a start message: {:?}", text);
        let (port, entries) = parsed.unwrap_or_default();
        prop_assert_eq!(port, own_port);
        let expected: Vec<(String, SocketAddr)> =
            peers.iter().map(|(n, a)| (n.clone(), as_seen(*a))).collect();
        prop_assert_eq!(entries, expected, "{:?}", text);
    }
}

/// Any address: IPv4, IPv6, or IPv4-mapped IPv6 (which a start message writes as IPv4).
fn socket_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port))),
        (any::<[u16; 8]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port))),
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| {
            SocketAddr::from((Ipv4Addr::from(ip).to_ipv6_mapped(), port))
        }),
    ]
}

/// The address as a start message states it: IPv4-mapped IPv6 is plain IPv4.
fn as_seen(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::from((v4, addr.port())),
            None => addr,
        },
        IpAddr::V4(_) => addr,
    }
}

/// Reads a start message the way a client does: `s:<own port>:` then `name:ip:port` entries
/// joined by `;`, IPv6 in brackets. `None` when it does not have that shape.
fn parse_start(text: &str) -> Option<(u16, Vec<(String, SocketAddr)>)> {
    let rest = text.strip_prefix("s:")?;
    let (port, list) = rest.split_once(':')?;
    let port = parse_port(port)?;
    if list.is_empty() {
        return Some((port, Vec::new()));
    }
    let entries = list
        .split(';')
        .map(parse_entry)
        .collect::<Option<Vec<_>>>()?;
    Some((port, entries))
}

/// One `name:ip:port` entry of a start message.
fn parse_entry(entry: &str) -> Option<(String, SocketAddr)> {
    let (name, addr) = entry.split_once(':')?;
    let (ip, port) = addr.rsplit_once(':')?;
    let ip: IpAddr = match ip.strip_prefix('[') {
        Some(v6) => IpAddr::V6(v6.strip_suffix(']')?.parse::<Ipv6Addr>().ok()?),
        None => IpAddr::V4(ip.parse::<Ipv4Addr>().ok()?),
    };
    let valid_name =
        (1..=12).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric());
    if !valid_name {
        return None;
    }
    Some((name.to_string(), SocketAddr::new(ip, parse_port(port)?)))
}

/// A port in plain decimal, as the server writes it (no sign, no leading zero).
fn parse_port(text: &str) -> Option<u16> {
    let canonical = !text.is_empty() && (text == "0" || !text.starts_with('0'));
    let all_digits = text.bytes().all(|b| b.is_ascii_digit());
    if !(canonical && all_digits) {
        return None;
    }
    text.parse().ok()
}

// --------------------------------------------------------------------------- session core

/// The senders: IPv4, IPv6, IPv4-mapped IPv6, and a second port behind the first IPv4 address.
fn sources() -> [SocketAddr; 4] {
    [
        SocketAddr::from(([198, 51, 100, 7], 40001)),
        SocketAddr::from((Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1), 40002)),
        SocketAddr::from((Ipv4Addr::new(203, 0, 113, 9).to_ipv6_mapped(), 40003)),
        SocketAddr::from(([198, 51, 100, 7], 40004)),
    ]
}

/// Settings short enough that player timeouts, session lifetimes and the end of the start
/// re-sends all happen within a generated sequence.
fn config() -> CoreConfig {
    CoreConfig {
        player_timeout: Duration::from_millis(2_000),
        session_lifetime: Duration::from_millis(12_000),
        start_interval: Duration::from_millis(100),
        start_sends: 8,
        error_repeats: 3,
        error_repeat_interval: Duration::from_millis(50),
        ..CoreConfig::default()
    }
}

/// The model's copy of the settings, in milliseconds.
const PLAYER_TIMEOUT: u64 = 2_000;
const SESSION_LIFETIME: u64 = 12_000;
const START_DONE: u64 = 8 * 100;

/// One step of a generated sequence.
#[derive(Clone, Debug)]
enum Step {
    /// Source `from` sends this request.
    Send { from: usize, fields: Fields },
    /// Source `from` sends a datagram that is not a request: `silent` ones get no reply at all,
    /// the others `error:invalid_request`.
    Garbage {
        from: usize,
        text: &'static str,
        silent: bool,
    },
    /// The clock moves `ms` forward, then the shard handles its timeouts.
    Advance { ms: u64 },
}

/// Requests over a tiny alphabet of names, so that sessions really get created, joined, started
/// and kicked; hosts and connects are favoured so that sessions fill up.
fn step() -> impl Strategy<Value = Step> {
    let fields = (
        select(vec!['h', 'c', 'c', 'c', 'p', 'p', 'k', 'x', 's', 'y']),
        select(vec!["R", "S"]),
        select(vec!["A", "B", "C", "D", "E"]),
        2u8..=5,
        proptest::option::of(select(vec!["W", "V"])),
    )
        .prop_map(|(letter, session, player, max_players, password)| Fields {
            letter,
            session: session.into(),
            player: player.into(),
            max_players,
            password: password
                .filter(|_| matches!(letter, 'h' | 'c'))
                .map(Into::into),
        });
    prop_oneof![
        12 => (0usize..4, fields).prop_map(|(from, fields)| Step::Send { from, fields }),
        3 => prop_oneof![0u64..150, 0u64..2_500].prop_map(|ms| Step::Advance { ms }),
        1 => (0usize..4, select(vec![("p:R", false), ("h:R:A:13", false), ("z:R:A", true), ("p:R:A:", false)]))
            .prop_map(|(from, (text, silent))| Step::Garbage { from, text, silent }),
    ]
}

/// A player in the model.
#[derive(Clone, Debug)]
struct ModelPlayer {
    name: String,
    addr: SocketAddr,
    last_seen: u64,
    confirmed: bool,
}

/// A session in the model, written from the protocol's table, not from the server's code.
#[derive(Clone, Debug)]
struct ModelSession {
    created: u64,
    max_players: usize,
    password: Option<String>,
    /// Join order; the first is the host.
    players: Vec<ModelPlayer>,
    banned: Vec<String>,
    /// When the host started it.
    started: Option<u64>,
}

impl ModelSession {
    fn info(&self) -> String {
        let names: Vec<&str> = self.players.iter().map(|p| p.name.as_str()).collect();
        format!("i:{}", names.join(":"))
    }

    /// The start message to player `index`.
    fn start_message(&self, index: usize) -> String {
        let me = &self.players[index];
        let others: Vec<String> = self
            .players
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != index)
            .map(|(_, p)| {
                let seen = as_seen(p.addr);
                match seen.ip() {
                    IpAddr::V4(v4) => format!("{}:{v4}:{}", p.name, seen.port()),
                    IpAddr::V6(v6) => format!("{}:[{v6}]:{}", p.name, seen.port()),
                }
            })
            .collect();
        format!("s:{}:{}", me.addr.port(), others.join(";"))
    }

    fn is_host(&self, addr: SocketAddr) -> bool {
        self.players.first().is_some_and(|p| p.addr == addr)
    }

    fn at(&self, name: &str, addr: SocketAddr) -> Option<usize> {
        self.players
            .iter()
            .position(|p| p.name == name && p.addr == addr)
    }

    /// "Heard from": a request reaching an open session refreshes the players at its sender.
    fn touch(&mut self, addr: SocketAddr, now: u64) {
        for p in self.players.iter_mut().filter(|p| p.addr == addr) {
            p.last_seen = now;
        }
    }
}

/// What the model predicts: (destination, payload).
type Replies = Vec<(SocketAddr, String)>;

#[derive(Debug, Default)]
struct Model {
    sessions: BTreeMap<String, ModelSession>,
}

impl Model {
    /// Applies a request as the protocol's table says, returning the replies.
    fn request(&mut self, now: u64, from: SocketAddr, f: &Fields) -> Replies {
        let mut out = Vec::new();
        let error = |code: &str| vec![(from, format!("error:{code}"))];
        let exists = self.sessions.contains_key(&f.session);
        let is_open = self
            .sessions
            .get(&f.session)
            .is_some_and(|s| s.started.is_none());
        // Every request but `y:` that reaches an open session refreshes its sender's players.
        if f.letter != 'y' {
            if let Some(s) = self.sessions.get_mut(&f.session) {
                if s.started.is_none() {
                    s.touch(from, now);
                }
            }
        }
        match f.letter {
            'h' => {
                if exists {
                    return match self.sessions.get(&f.session) {
                        Some(s) if is_open && s.is_host(from) => vec![(from, s.info())],
                        _ => error("session_exists"),
                    };
                }
                let session = ModelSession {
                    created: now,
                    max_players: usize::from(f.max_players),
                    password: f.password.clone(),
                    players: vec![ModelPlayer {
                        name: f.player.clone(),
                        addr: from,
                        last_seen: now,
                        confirmed: false,
                    }],
                    banned: Vec::new(),
                    started: None,
                };
                out.push((from, session.info()));
                self.sessions.insert(f.session.clone(), session);
            }
            'c' => {
                let Some(s) = self
                    .sessions
                    .get_mut(&f.session)
                    .filter(|s| s.started.is_none())
                else {
                    return error("session_non_existent");
                };
                if s.banned.contains(&f.player) {
                    return error("kicked_by_host");
                }
                if s.password.is_some() && s.password != f.password {
                    return error("password_mismatch");
                }
                if s.at(&f.player, from).is_some() {
                    return vec![(from, s.info())];
                }
                if s.players.len() >= s.max_players {
                    return error("session_full");
                }
                if s.players.iter().any(|p| p.name == f.player) {
                    return error("player_name_in_use");
                }
                s.players.push(ModelPlayer {
                    name: f.player.clone(),
                    addr: from,
                    last_seen: now,
                    confirmed: false,
                });
                out.extend(s.players.iter().map(|p| (p.addr, s.info())));
            }
            'p' => {
                if let Some(s) = self.sessions.get(&f.session) {
                    if s.started.is_some() {
                        if let Some(i) = s.at(&f.player, from).filter(|&i| !s.players[i].confirmed)
                        {
                            return vec![(from, s.start_message(i))];
                        }
                    }
                }
                let Some(s) = self.sessions.get(&f.session).filter(|_| is_open) else {
                    return error("session_non_existent");
                };
                if s.at(&f.player, from).is_none() {
                    return error("non_existent_player");
                }
                out.push((from, s.info()));
            }
            'k' => {
                let Some(s) = self
                    .sessions
                    .get_mut(&f.session)
                    .filter(|s| s.started.is_none())
                else {
                    return error("session_non_existent");
                };
                let Some(index) = s.players.iter().position(|p| p.name == f.player) else {
                    return error("non_existent_player");
                };
                if !s.is_host(from) {
                    return error("non_host_player");
                }
                let kicked = s.players.remove(index);
                out.push((kicked.addr, "error:kicked_by_host".to_string()));
                s.banned.push(kicked.name);
                if s.players.is_empty() {
                    self.sessions.remove(&f.session);
                } else {
                    out.extend(s.players.iter().map(|p| (p.addr, s.info())));
                }
            }
            'x' => {
                let Some(s) = self
                    .sessions
                    .get_mut(&f.session)
                    .filter(|s| s.started.is_none())
                else {
                    return error("session_non_existent");
                };
                let Some(index) = s.at(&f.player, from) else {
                    return error("non_existent_player");
                };
                s.players.remove(index);
                out.push((from, "error:player_exited_session".to_string()));
                if s.players.is_empty() {
                    self.sessions.remove(&f.session);
                }
            }
            's' => {
                if exists && !is_open {
                    return out; // already starting: retries are normal
                }
                let Some(s) = self.sessions.get_mut(&f.session) else {
                    return error("session_non_existent");
                };
                if !s.is_host(from) {
                    return error("non_host_player");
                }
                if s.players.len() < 2 {
                    return error("only_one_player_in_session");
                }
                s.started = Some(now);
                out.extend((0..s.players.len()).map(|i| (s.players[i].addr, s.start_message(i))));
            }
            _ => {
                let Some(s) = self
                    .sessions
                    .get_mut(&f.session)
                    .filter(|s| s.started.is_some())
                else {
                    return error("session_not_started");
                };
                let Some(i) = s.at(&f.player, from).filter(|&i| !s.players[i].confirmed) else {
                    return error("non_existent_player");
                };
                s.players[i].confirmed = true;
            }
        }
        out
    }

    /// Applies the passing of time up to `now`: started sessions are forgotten once their
    /// re-sends are done, open ones end with their lifetime or lose the players not heard from.
    fn timeout(&mut self, now: u64) {
        self.sessions.retain(|_, s| match s.started {
            Some(at) => now < at + START_DONE,
            None if now >= s.created + SESSION_LIFETIME => false,
            None => {
                s.players.retain(|p| now < p.last_seen + PLAYER_TIMEOUT);
                !s.players.is_empty()
            }
        });
    }
}

/// Replies as comparable (sorted) lists: the protocol does not order the datagrams of a
/// broadcast.
fn sorted(mut replies: Replies) -> Replies {
    replies.sort();
    replies
}

/// The shard, the model, and a fake clock.
struct Run {
    shard: Shard,
    model: Model,
    epoch: Instant,
    now: u64,
    out: Outbox,
    heard: HashSet<SocketAddr>,
}

impl Run {
    fn new() -> Self {
        let epoch = Instant::now();
        Self {
            shard: Shard::new(&config(), epoch),
            model: Model::default(),
            epoch,
            now: 0,
            out: Outbox::new(),
            heard: HashSet::new(),
        }
    }

    fn instant(&self) -> Instant {
        self.epoch + Duration::from_millis(self.now)
    }

    /// Takes what the shard sent.
    fn drain(&mut self) -> Replies {
        let sent = self
            .out
            .iter()
            .map(|(to, p)| (to, String::from_utf8_lossy(p).into_owned()))
            .collect();
        self.out.clear();
        sent
    }

    /// Runs one step, checking the shard against the model and the properties.
    fn step(&mut self, step: &Step) -> Result<(), TestCaseError> {
        // The model before the step: timeout replies describe sessions as they were.
        let before = self.model.sessions.clone();
        match step {
            Step::Send { from, fields } => {
                let from = sources()[*from];
                self.heard.insert(from);
                let text = fields.text();
                let now = self.instant();
                self.shard
                    .handle_datagram(now, from, text.as_bytes(), &mut self.out);
                let expected = self.model.request(self.now, from, fields);
                let sent = self.drain();
                prop_assert_eq!(
                    sorted(sent.clone()),
                    sorted(expected),
                    "replies to {:?} from {} at {} ms",
                    text,
                    from,
                    self.now
                );
                self.check_replies(&sent, &before)?;
            }
            Step::Garbage { from, text, silent } => {
                let from = sources()[*from];
                self.heard.insert(from);
                let now = self.instant();
                self.shard
                    .handle_datagram(now, from, text.as_bytes(), &mut self.out);
                let expected = if *silent {
                    vec![]
                } else {
                    vec![(from, "error:invalid_request".to_string())]
                };
                prop_assert_eq!(self.drain(), expected, "replies to {:?}", text);
            }
            Step::Advance { ms } => {
                self.now += ms;
                let now = self.instant();
                self.shard.handle_timeout(now, &mut self.out);
                self.model.timeout(self.now);
                let sent = self.drain();
                self.check_replies(&sent, &before)?;
            }
        }
        prop_assert_eq!(self.shard.check_invariants(), Ok(()));
        prop_assert_eq!(self.shard.sessions(), self.model.sessions.len());
        let players: usize = self.model.sessions.values().map(|s| s.players.len()).sum();
        prop_assert_eq!(self.shard.players(), players);
        Ok(())
    }

    /// The properties, on every datagram the shard sent in a step: `i:` lists are those of a
    /// session at that address, host first, unique, within the max; `s:` messages list every
    /// other player of a starting session. `before` is the model before the step, since a
    /// timeout may send a last start round for a session it then forgets.
    fn check_replies(
        &self,
        sent: &Replies,
        before: &BTreeMap<String, ModelSession>,
    ) -> Result<(), TestCaseError> {
        let sessions = || self.model.sessions.values().chain(before.values());
        for (to, payload) in sent {
            prop_assert!(
                self.heard.contains(to),
                "{:?} to {}, a stranger",
                payload,
                to
            );
            if let Some(names) = payload.strip_prefix("i:") {
                let names: Vec<&str> = names.split(':').collect();
                let unique: HashSet<&str> = names.iter().copied().collect();
                prop_assert_eq!(unique.len(), names.len(), "names twice in {:?}", payload);
                // Some session at that address has exactly these players, host first.
                let matching = sessions().find(|s| {
                    s.players.iter().any(|p| p.addr == *to)
                        && s.players
                            .iter()
                            .map(|p| p.name.as_str())
                            .eq(names.iter().copied())
                });
                prop_assert!(
                    matching.is_some(),
                    "{:?} to {} is no session's player list",
                    payload,
                    to
                );
                if let Some(s) = matching {
                    prop_assert!(names.len() <= s.max_players, "{:?} over max", payload);
                }
            } else if payload.starts_with("s:") {
                let parsed = parse_start(payload);
                prop_assert!(parsed.is_some(), "bad start message {:?}", payload);
                let (_, entries) = parsed.unwrap_or_default();
                // The other players of a starting session, in join order, with their addresses.
                let complete = sessions().filter(|s| s.started.is_some()).any(|s| {
                    (0..s.players.len()).any(|i| {
                        s.players[i].addr == *to && {
                            let others = s
                                .players
                                .iter()
                                .enumerate()
                                .filter(|&(j, _)| j != i)
                                .map(|(_, p)| (p.name.clone(), as_seen(p.addr)));
                            others.eq(entries.iter().cloned())
                        }
                    })
                });
                prop_assert!(complete, "{:?} to {} misses players", payload, to);
            } else {
                prop_assert!(payload.starts_with("error:"), "unknown reply {:?}", payload);
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// The shard answers every request as the protocol's table says, and the properties hold on
    /// everything it sends, timeouts included.
    #[test]
    fn shard_follows_the_protocol(steps in proptest::collection::vec(step(), 1..80)) {
        let mut run = Run::new();
        for step in &steps {
            run.step(step)?;
        }
    }

    /// The host is the first name of every `i:`, and after it leaves (exit, kick or timeout) the
    /// next player in join order becomes host, and is answered as such.
    #[test]
    fn host_is_the_first_player_in_join_order(
        count in 2usize..=6,
        leaves in proptest::collection::vec(0u8..3, 1..5),
    ) {
        let mut run = Run::new();
        let names = ["A", "B", "C", "D", "E", "F"];
        // Each player on its own port of 127.0.0.1, in join order.
        let addr = |i: usize| SocketAddr::from(([127, 0, 0, 1], 50_000 + i as u16));
        let send = |run: &mut Run, i: usize, text: &str| {
            run.heard.insert(addr(i));
            let now = run.instant();
            run.shard.handle_datagram(now, addr(i), text.as_bytes(), &mut run.out);
            run.drain()
        };
        prop_assert_eq!(send(&mut run, 0, "h:R:A:6"), vec![(addr(0), "i:A".to_string())]);
        for (i, name) in names.iter().enumerate().take(count).skip(1) {
            let joined = send(&mut run, i, &format!("c:R:{name}"));
            prop_assert_eq!(joined.len(), i + 1, "everyone hears of {}", name);
        }
        let mut members: Vec<usize> = (0..count).collect();
        for how in leaves {
            if members.len() < 2 {
                break;
            }
            let host = members[0];
            match how {
                0 => { send(&mut run, host, &format!("x:R:{}", names[host])); }
                1 => { send(&mut run, host, &format!("k:R:{}", names[host])); }
                _ => {
                    // Everyone but the host keeps pinging; the host falls silent.
                    for _ in 0..5 {
                        run.now += 500;
                        for &i in &members[1..] {
                            send(&mut run, i, &format!("p:R:{}", names[i]));
                        }
                        let now = run.instant();
                        run.shard.handle_timeout(now, &mut run.out);
                        run.drain();
                    }
                }
            }
            members.remove(0);
            for &i in &members {
                let reply = send(&mut run, i, &format!("p:R:{}", names[i]));
                let expected = members.iter().map(|&j| names[j]).collect::<Vec<_>>().join(":");
                prop_assert_eq!(reply, vec![(addr(i), format!("i:{expected}"))]);
            }
            // Host-only commands are no longer taken from the others.
            if let Some(&other) = members.get(1) {
                prop_assert_eq!(
                    send(&mut run, other, "s:R:X"),
                    vec![(addr(other), "error:non_host_player".to_string())]
                );
            }
            prop_assert_eq!(run.shard.check_invariants(), Ok(()));
        }
    }

    /// A full lobby of any size, from any mix of addresses, started by its host: every player's
    /// start message lists every other player, in join order, on every round.
    #[test]
    fn every_player_is_in_every_other_players_start_message(
        count in 2usize..=12,
        ports in proptest::collection::vec((0usize..4, 1u16..=u16::MAX), 12),
        confirms in proptest::collection::vec(any::<bool>(), 12),
    ) {
        let names: Vec<String> = (0..count).map(|i| format!("Player{i}")).collect();
        let addrs: Vec<SocketAddr> = ports[..count]
            .iter()
            .map(|&(src, port)| {
                let mut a = sources()[src];
                a.set_port(port);
                a
            })
            .collect();
        let mut run = Run::new();
        let send = |run: &mut Run, from: SocketAddr, text: &str| {
            run.heard.insert(from);
            let now = run.instant();
            run.shard.handle_datagram(now, from, text.as_bytes(), &mut run.out);
            run.drain()
        };
        let mut joined = Vec::new();
        for (i, (name, &from)) in names.iter().zip(&addrs).enumerate() {
            let text = if i == 0 { format!("h:R:{name}:{count}") } else { format!("c:R:{name}") };
            let reply = send(&mut run, from, &text);
            // Distinct names, room for all: every join succeeds, whatever the addresses.
            prop_assert!(!reply.iter().any(|(_, p)| p.starts_with("error:")), "{:?}", reply);
            joined.push((name.clone(), from));
        }
        let host = joined[0].1;
        let mut rounds = vec![send(&mut run, host, "s:R:X")];
        for (i, (name, from)) in joined.iter().enumerate() {
            if confirms[i] {
                send(&mut run, *from, &format!("y:R:{name}"));
            }
        }
        for _ in 0..9 {
            run.now += 100;
            let now = run.instant();
            run.shard.handle_timeout(now, &mut run.out);
            rounds.push(run.drain());
        }
        let mut got = 0;
        for sent in rounds.iter().flatten() {
            let (to, payload) = sent;
            let (port, entries) = parse_start(payload).unwrap_or_default();
            prop_assert!(payload.starts_with("s:"), "{:?}", payload);
            // The recipients at this address and port: the message is one of theirs.
            let fits = joined.iter().enumerate().any(|(i, (_, a))| {
                a == to && port == a.port() && {
                    let others: Vec<(String, SocketAddr)> = joined
                        .iter()
                        .enumerate()
                        .filter(|&(j, _)| j != i)
                        .map(|(_, (n, a))| (n.clone(), as_seen(*a)))
                        .collect();
                    others == entries
                }
            });
            prop_assert!(fits, "{:?} to {} does not list every other player", payload, to);
            got += 1;
        }
        // Every player got the first round; unconfirmed ones got all eight.
        let unconfirmed = (0..joined.len()).filter(|&i| !confirms[i]).count();
        prop_assert_eq!(got, joined.len() + 7 * unconfirmed);
        prop_assert_eq!(run.shard.sessions(), 0, "forgotten after the last round");
    }
}

/// The datagrams a shard sent, as (destination, payload).
fn sent(out: &mut Outbox) -> Vec<(SocketAddr, Vec<u8>)> {
    let sent = out.iter().map(|(to, p)| (to, p.to_vec())).collect();
    out.clear();
    sent
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// The same datagrams, handed over in batches of generated sizes or one at a time, give the
    /// same replies in the same order and leave the shards alike.
    #[test]
    fn batches_are_handled_as_one_at_a_time(
        steps in proptest::collection::vec(step(), 1..120),
        sizes in proptest::collection::vec(1usize..48, 1..40),
    ) {
        let epoch = Instant::now();
        let mut single = Shard::new(&config(), epoch);
        let mut batched = Shard::new(&config(), epoch);
        let (mut single_out, mut batched_out) = (Outbox::new(), Outbox::new());
        let mut now = epoch;
        let mut pending: Vec<(SocketAddr, String)> = Vec::new();
        let mut sizes = sizes.iter().cycle();
        let mut size = *sizes.next().unwrap_or(&1);
        let flush = |pending: &mut Vec<(SocketAddr, String)>,
                     single: &mut Shard,
                     batched: &mut Shard,
                     single_out: &mut Outbox,
                     batched_out: &mut Outbox,
                     now: Instant| {
            for (from, text) in pending.iter() {
                single.handle_datagram(now, *from, text.as_bytes(), single_out);
            }
            let batch = pending.iter().map(|(from, text)| Incoming {
                from: *from,
                local: None,
                bytes: text.as_bytes(),
            });
            batched.handle_datagrams(now, batch, batched_out);
            pending.clear();
        };
        for step in &steps {
            match step {
                Step::Send { from, fields } => pending.push((sources()[*from], fields.text())),
                Step::Garbage { from, text, .. } => pending.push((sources()[*from], text.to_string())),
                Step::Advance { ms } => {
                    flush(&mut pending, &mut single, &mut batched, &mut single_out, &mut batched_out, now);
                    now += Duration::from_millis(*ms);
                    single.handle_timeout(now, &mut single_out);
                    batched.handle_timeout(now, &mut batched_out);
                }
            }
            if pending.len() >= size {
                flush(&mut pending, &mut single, &mut batched, &mut single_out, &mut batched_out, now);
                size = *sizes.next().unwrap_or(&1);
            }
            prop_assert_eq!(sent(&mut batched_out), sent(&mut single_out));
            prop_assert_eq!(batched.check_invariants(), Ok(()));
            prop_assert_eq!(batched.sessions(), single.sessions());
            prop_assert_eq!(batched.players(), single.players());
        }
        flush(&mut pending, &mut single, &mut batched, &mut single_out, &mut batched_out, now);
        prop_assert_eq!(sent(&mut batched_out), sent(&mut single_out));
    }
}
