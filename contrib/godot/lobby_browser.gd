# A lobby browser for Godot 3 games that use the unmodified RabidHolePuncher plugin with a
# rabid-punch server: list, filter, page, quick join, announce a lobby, chat.
# The messages are those of docs/lobbies.md; how to use this node is in docs/godot.md.
#
# Why two kinds of socket:
# - Announcing a lobby (a:1:, d:) and chatting (m:) must come from the session's own address,
#   because the server only takes them from the host (or the member). So they go out through the
#   plugin's socket, `plugin._server`. Their replies land there and the plugin reads and ignores
#   them, since they never start with `error`, `i` or `s`... except the compatible d: and m:
#   errors, which end the plugin's session. That is why every field is checked here first, with
#   the server's rules, and why nothing is sent through the plugin outside a session.
# - Listings (b:1:, q:1:, l:) go out from sockets of our own, whose replies we can read. Each
#   request gets a fresh socket: replies carry no request id, so a late reply to an old request
#   can then never be taken for the answer to a newer one.
#
# UDP loses datagrams: a request is sent again every `retry_interval` seconds, `tries` times in
# all, then reported as failed. An announce cannot read its own reply (the plugin takes it), so
# it is confirmed the way other players will see it: by listing until the lobby shows (or, when
# unlisting, is gone), sending the announce again when it does not.
#
# Godot 3.2 API (Debian's godot3-server is 3.2.3).
extends Node

# A page of `browse()`: `total` lobbies match now; `lobbies` is an Array of Dictionaries
# (session, host, players, max_players, password, version, mode, description, age);
# `next_cursor` is "" on the last page, else what `browse()` or `next_page()` takes next.
signal lobbies_listed(total, lobbies, next_cursor)
# The answer to `quick_join()`: a Dictionary (session, host, players, max_players), empty
# when no lobby has a free slot. Join it with RabidHolePuncher.join_session(lobby.session, ...).
signal quick_join_found(lobby)
# The answer to `list_compatible()` (the FusionV1 listing, l:): an Array of Dictionaries
# (session, host, players, max_players, version, mode).
signal compat_listed(lobbies)
# The end of `announce()` or `set_lobby_data()`: ok, and the lobby as listed (an empty
# Dictionary when unlisting), or not ok and why ("not_listed", "still_listed", "timeout").
signal announce_result(ok, detail)
# A listing request that failed: `request` is "browse", "quick" or "list"; `error` is
# "timeout" or the server's code (invalid_request, ...).
signal request_failed(request, error)

export var server_address := "127.0.0.1"
export var server_port := 7777
# Your game's id in the directory (1-32 letters, digits, `.`, `_`, `-`), e.g. com.example.cards.
export var game := ""
# Sends per request (the first one included), and seconds between them.
export var tries := 4
export var retry_interval := 0.5
# Bytes a browse request is padded to. A page is at most 3 times its request and at most 1200
# bytes (docs/lobbies.md, "Sizes and amplification"): 400 earns full pages, a smaller value
# smaller pages (too small, and a page cannot hold one entry: request_failed "page_too_small").
# The server reads 512 bytes of a datagram: more earns nothing.
export var request_size := 400

# The RabidHolePuncher node (anything whose `_server` is the session's PacketPeerUDP).
var plugin: Object = null

const _NAME_CHARS := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
const _GAME_CHARS := _NAME_CHARS + "._-"
const _FRAMING := ":;|[]\\"
const _FULL_PAGE_REQUEST := 400
# A q:1: reply is at most 33 bytes: a 64-byte request earns it under any amplification rule.
const _QUICK_PAD_TO := 64
# How many pages an announce's confirmation reads looking for its lobby.
const _CHECK_PAGES := 5
# Seconds between an announce and the listing that confirms it.
const _CHECK_DELAY := 0.2

var _clock := 0.0
# name ("browse", "quick", "list"; "check_browse", "check_list" for confirmations) -> the
# request in flight: its own socket, the datagram, the reply's prefix, sends so far, next send.
var _requests := {}
var _last_browse := []
# The announce or lobby data being confirmed, or empty.
var _confirm := {}


# Lists one page of this game's open public lobbies. `flags`: "" or letters, `f` only with a
# free slot, `o` only without password; `version`, `mode`: exact match, "" for any; `order`:
# "n" newest first, "f" fullest first; `cursor`: "" for the first page.
func browse(flags := "", version := "", mode := "", order := "n", cursor := "") -> int:
	if not (_is_game(game) and flags in ["", "f", "o", "fo", "of"] and _is_text(version, 32)
			and _is_text(mode, 32) and order in ["n", "f"] and not (":" in cursor)):
		return ERR_INVALID_PARAMETER
	_last_browse = [flags, version, mode, order]
	var text := "b:1:%s:%s:%s:%s:%s:%s" % [game, flags, version, mode, order, cursor]
	_request("browse", _padded(text, int(min(request_size, 512))), "b:1:")
	return OK


# The page after the last one `browse()` asked for, with the same filters.
func next_page(cursor: String) -> int:
	if _last_browse.empty() or cursor == "":
		return ERR_INVALID_PARAMETER
	return browse(_last_browse[0], _last_browse[1], _last_browse[2], _last_browse[3], cursor)


# Asks for the fullest lobby of this game (and `version`, when given) with a free slot and no
# password, so that players gather instead of spreading.
func quick_join(version := "") -> int:
	if not (_is_game(game) and _is_text(version, 32)):
		return ERR_INVALID_PARAMETER
	# Always four fields, so that the padding is never read as a version.
	_request("quick", _padded("q:1:%s:%s" % [game, version], _QUICK_PAD_TO), "q:1:")
	return OK


# The compatible listing (l:) of sessions made public with d:, as FusionV1 shows it.
func list_compatible() -> int:
	_request("list", "l:", "l:")
	return OK


# Puts the plugin's session in this game's directory (a:1:), listed when `public`, else
# joinable by name only. Call it as the host, after the plugin created the session; call it
# again to change the data. Ends with `announce_result`.
func announce(session: String, public: bool, version := "", mode := "", description := "") -> int:
	if not (_is_game(game) and _is_name(session, 10) and _is_text(version, 32)
			and _is_text(mode, 32) and _is_text(description, 64)):
		return ERR_INVALID_PARAMETER
	var text := "a:1:%s:%s:%s:%s:%s:%s" % [session, game, "1" if public else "0", version, mode,
			description]
	return _announce(text, session, public, "check_browse")


# The FusionV1 lobby data (d:): lists the session in `l:` when `public`. Same rules and
# confirmation as `announce()`.
func set_lobby_data(session: String, public: bool, version: String, mode: String) -> int:
	if not (_is_name(session, 10) and _is_text(version, 32) and _is_text(mode, 32)):
		return ERR_INVALID_PARAMETER
	var text := "d:%s:%s:%s:%s" % [session, "True" if public else "False", version, mode]
	return _announce(text, session, public, "check_list")


# Says `text` in the lobby as `player` (m:), from the plugin's socket: the server takes chat
# only from the member's own address. Sent once: a chat line sent twice would show twice.
# Every member's copy arrives on its plugin socket, which the unmodified plugin ignores.
func send_chat(session: String, player: String, text: String) -> int:
	var bytes := text.to_utf8().size()
	if not (_is_name(session, 10) and _is_name(player, 12) and bytes >= 1 and bytes <= 200
			and not _has_control(text)):
		return ERR_INVALID_PARAMETER
	return _put_through_plugin("m:%s:%s:%s" % [session, player, text])


func _process(delta: float) -> void:
	_clock += delta
	for name in _requests.keys():
		var request: Dictionary = _requests[name]
		var reply := _read_reply(request)
		if reply != "":
			_requests.erase(name)
			_on_reply(name, reply)
		elif _clock >= request.next_at:
			if request.sends >= tries:
				_requests.erase(name)
				_on_failure(name, "timeout")
			else:
				request.socket.put_packet(request.packet)
				request.sends += 1
				request.next_at = _clock + retry_interval
	_step_confirm()


func _request(name: String, text: String, prefix: String) -> void:
	var socket := PacketPeerUDP.new()
	var ip := _server_ip()
	if ip == "" or socket.connect_to_host(ip, server_port) != OK:
		_on_failure(name, "unreachable")
		return
	# Replaces any request of the same name; sent at the next frame, then re-sent.
	_requests[name] = {"socket": socket, "packet": text.to_utf8(), "prefix": prefix,
			"sends": 0, "next_at": _clock}


func _read_reply(request: Dictionary) -> String:
	while request.socket.get_available_packet_count() > 0:
		var text: String = request.socket.get_packet().get_string_from_utf8()
		if text.begins_with(request.prefix):
			return text
	return ""


func _on_reply(name: String, reply: String) -> void:
	var fields := reply.split(":")
	if not name.ends_with("list") and fields.size() >= 4 and fields[2] == "error":
		_on_failure(name, fields[3])
	elif name == "browse" or name == "check_browse":
		if fields.size() < 4 or not fields[2].is_valid_integer():
			_on_failure(name, "bad_reply")
			return
		var lobbies := []
		for i in range(4, fields.size()):
			var lobby := _parse_entry(fields[i])
			if not lobby.empty():
				lobbies.append(lobby)
		if lobbies.empty() and fields[3] != "":
			# Lobbies remain but not one fit: the same request would get the same empty page.
			_on_failure(name, "page_too_small")
		elif name == "browse":
			emit_signal("lobbies_listed", int(fields[2]), lobbies, fields[3])
		else:
			_checked(lobbies, fields[3])
	elif name == "quick":
		var lobby := {}
		if fields.size() == 6 and fields[4].is_valid_integer() and fields[5].is_valid_integer():
			lobby = {"session": fields[2], "host": fields[3], "players": int(fields[4]),
					"max_players": int(fields[5])}
		emit_signal("quick_join_found", lobby)
	else:
		var lobbies := _parse_compatible(reply)
		if name == "list":
			emit_signal("compat_listed", lobbies)
		else:
			_checked(lobbies, "")


func _on_failure(name: String, error: String) -> void:
	if name.begins_with("check"):
		_end_confirm(false, error)
	else:
		emit_signal("request_failed", name, error)


# `<session>|<host>|<n>|<max>|<password>|<version>|<mode>|<description>|<age>`
static func _parse_entry(entry: String) -> Dictionary:
	var f := entry.split("|")
	if f.size() != 9 or not (f[2].is_valid_integer() and f[3].is_valid_integer()
			and f[8].is_valid_integer()):
		return {}
	return {"session": f[0], "host": f[1], "players": int(f[2]), "max_players": int(f[3]),
			"password": f[4] == "1", "version": f[5], "mode": f[6], "description": f[7],
			"age": int(f[8])}


# `l:<host>|<session>|<n> / <max>|<version>|<mode>:...`
static func _parse_compatible(reply: String) -> Array:
	var lobbies := []
	for entry in reply.substr(2, reply.length() - 2).split(":", false):
		var f: PoolStringArray = entry.split("|")
		if f.size() != 5:
			continue
		var counts: PoolStringArray = f[2].split(" / ")
		if counts.size() != 2 or not (counts[0].is_valid_integer() and counts[1].is_valid_integer()):
			continue
		lobbies.append({"session": f[1], "host": f[0], "players": int(counts[0]),
				"max_players": int(counts[1]), "version": f[3], "mode": f[4]})
	return lobbies


# The confirmation loop: send through the plugin, list after a moment, look for the session on
# up to _CHECK_PAGES pages; send again while the listing disagrees, `tries` times in all.
func _announce(text: String, session: String, public: bool, check: String) -> int:
	if _plugin_socket() == null:
		return ERR_UNCONFIGURED
	_requests.erase("check_browse")
	_requests.erase("check_list")
	_confirm = {"packet": text, "session": session, "public": public, "check": check,
			"sends": 0, "check_at": _clock, "pages": 0}
	return OK


func _step_confirm() -> void:
	if _confirm.empty() or _requests.has(_confirm.check) or _clock < _confirm.check_at:
		return
	if _confirm.sends >= tries:
		_end_confirm(false, "not_listed" if _confirm.public else "still_listed")
		return
	if _put_through_plugin(_confirm.packet) != OK:
		_end_confirm(false, "not_in_session")
		return
	_confirm.sends += 1
	_confirm.pages = 0
	_confirm.check_at = _clock + _CHECK_DELAY
	_check_page("")


func _check_page(cursor: String) -> void:
	# Not sent before check_at: _process sends a request when its next_at has come.
	if _confirm.check == "check_list":
		_request("check_list", "l:", "l:")
	else:
		var text := "b:1:%s::::n:%s" % [game, cursor]
		_request("check_browse", _padded(text, _FULL_PAGE_REQUEST), "b:1:")
	_confirm.pages += 1
	if _requests.has(_confirm.check):
		_requests[_confirm.check].next_at = max(_clock, _confirm.check_at)


func _checked(lobbies: Array, next_cursor: String) -> void:
	if _confirm.empty():
		return
	for lobby in lobbies:
		if lobby.session == _confirm.session:
			if _confirm.public:
				_end_confirm(true, lobby)
			else:
				_retry_confirm()
			return
	if next_cursor != "" and _confirm.pages < _CHECK_PAGES:
		_check_page(next_cursor)
	elif _confirm.public:
		_retry_confirm()
	else:
		_end_confirm(true, {})


# The listing disagrees: send the announce again once retry_interval has passed.
func _retry_confirm() -> void:
	_confirm.check_at = _clock + retry_interval


func _end_confirm(ok: bool, detail) -> void:
	_confirm = {}
	emit_signal("announce_result", ok, detail)


func _put_through_plugin(text: String) -> int:
	var socket = _plugin_socket()
	if socket == null:
		return ERR_UNCONFIGURED
	return socket.put_packet(text.to_utf8())


# The plugin's socket, only while the plugin is in a session: an error reply to a datagram sent
# before its `i:` or after its start would end its attempt.
func _plugin_socket():
	if plugin == null or not is_instance_valid(plugin):
		return null
	var machine = plugin.get("_state_machine")
	if machine != null and machine.state.name != "InSession":
		return null
	return plugin.get("_server")


func _server_ip() -> String:
	if server_address.is_valid_ip_address():
		return server_address
	# IPv4 only, as the plugin needs (docs/godot.md).
	return IP.resolve_hostname(server_address, IP.TYPE_IPV4)


# `text` and a last field of filler letters, `size` bytes in all (String.repeat is Godot 3.3+).
static func _padded(text: String, size: int) -> String:
	var missing := size - text.to_utf8().size() - 1
	if missing <= 0:
		return text
	var pad := "p"
	while pad.length() < missing:
		pad += pad
	return text + ":" + pad.substr(0, missing)


static func _only(text: String, allowed: String) -> bool:
	for c in text:
		if allowed.find(c) == -1:
			return false
	return true


static func _is_name(text: String, most: int) -> bool:
	return text.length() >= 1 and text.length() <= most and _only(text, _NAME_CHARS)


static func _is_game(text: String) -> bool:
	return text.length() >= 1 and text.length() <= 32 and _only(text, _GAME_CHARS)


# Version, mode, description: at most `most` bytes, nothing that breaks the `:` and `|` framing.
static func _is_text(text: String, most: int) -> bool:
	if text.to_utf8().size() > most or _has_control(text):
		return false
	for c in text:
		if _FRAMING.find(c) != -1:
			return false
	return true


# Control characters (Unicode Cc: U+0000-U+001F, U+007F-U+009F): the server refuses them.
static func _has_control(text: String) -> bool:
	for i in range(text.length()):
		var code := text.ord_at(i)
		if code < 32 or (code >= 127 and code <= 159):
			return true
	return false
