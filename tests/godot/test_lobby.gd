# Headless test of contrib/godot/lobby_browser.gd against a running rabid-punch server:
#
#   godot3-server --path tests/godot --script test_lobby.gd -- --server=127.0.0.1:7777
#
# (tests/godot_lobby.rs runs it against a fresh server.) Players are plain PacketPeerUDP sockets
# standing in for the plugin's `_server` socket: they host or join with h:/c: and ping like the
# plugin, and the helper sends announces, lobby data and chat through them. Listings go through
# the helper's own sockets. Prints `ok: ...` per step, `FAIL: ...` and exits 1 on the first
# failure, `GODOT LOBBY TEST PASSED` and exits 0 at the end.
extends SceneTree

const GAME := "com.example.cards"
# Room5's description: its entry (92 bytes) is longer than an unpadded browse request earns (3 x
# 27 bytes), whatever room the server keeps for a page's head.
const LONG_DESCRIPTION := "Bring snacks, we play until midnight, and every deck is welcome"


# A stand-in for the plugin: its socket is `_server`, as in RabidHolePuncher.gd.
class Player:
	var name: String
	var session: String
	var _server := PacketPeerUDP.new()
	var in_session := false
	var started := false
	var inbox := []

	func _init(player: String, session_name: String, ip: String, port: int) -> void:
		name = player
		session = session_name
		_server.connect_to_host(ip, port)

	func send(text: String) -> void:
		_server.put_packet(text.to_utf8())


var _ip := "127.0.0.1"
var _port := 7777
var _helper: Node
var _players := []
var _results := []
var _ping_at := 0.0
var _failed := false


func _initialize() -> void:
	var helper_path := ProjectSettings.globalize_path("res://") + "../../contrib/godot/lobby_browser.gd"
	for arg in OS.get_cmdline_args():
		if arg.begins_with("--server="):
			var address: String = arg.substr(9, arg.length() - 9)
			_ip = address.rsplit(":", true, 1)[0]
			_port = int(address.rsplit(":", true, 1)[1])
		elif arg.begins_with("--helper="):
			helper_path = arg.substr(9, arg.length() - 9)
	var script = load(helper_path)
	if script == null:
		_fail("cannot load the helper from " + helper_path)
		return
	_helper = script.new()
	_helper.server_address = _ip
	_helper.server_port = _port
	_helper.game = GAME
	root.add_child(_helper)
	for signal_name in ["lobbies_listed", "quick_join_found", "compat_listed", "announce_result",
			"request_failed"]:
		_helper.connect(signal_name, self, "_on_" + signal_name)
	connect("idle_frame", self, "_pump")
	create_timer(60.0).connect("timeout", self, "_fail", ["watchdog: the test took over 60 s"])
	_run()


func _run() -> void:
	# Game GAME: Room1 (Ana hosts, Eve joined: 2/4, open), Room3 (Cid and Fay: 2/2, full),
	# Room5 (Gus: 1/3, password). Room2 (Ben) uses the compatible d:, Room4 (Dan) another game.
	var ana := _player("Ana", "Room1")
	var eve := _player("Eve", "Room1")
	var ben := _player("Ben", "Room2")
	var cid := _player("Cid", "Room3")
	var fay := _player("Fay", "Room3")
	var dan := _player("Dan", "Room4")
	var gus := _player("Gus", "Room5")
	for pair in [[ana, "h:Room1:Ana:4"], [eve, "c:Room1:Eve"], [ben, "h:Room2:Ben:2"],
			[cid, "h:Room3:Cid:2"], [fay, "c:Room3:Fay"], [dan, "h:Room4:Dan:3"],
			[gus, "h:Room5:Gus:3:pw5"]]:
		if not yield(_enter(pair[0], pair[1]), "completed"):
			return
	_ok("seven players in five sessions")

	# Announces go through the hosts' sockets; each is confirmed by a listing.
	var r
	for case in [[ana, "Room1", "1.0", "Draft", "Friendly games"], [cid, "Room3", "1.0", "Ranked", ""],
			[gus, "Room5", "1.1", "Draft", LONG_DESCRIPTION]]:
		_helper.plugin = case[0]
		_expect(_helper.announce(case[1], true, case[2], case[3], case[4]) == OK, "announce " + case[1])
		r = yield(_wait("announce_result"), "completed")
		if not _check(r != null and r[0] and r[1].session == case[1] and r[1].version == case[2]
				and r[1].mode == case[3] and r[1].description == case[4], "%s announced: %s" % [case[1], r]):
			return
	_helper.plugin = dan
	_helper.game = "org.other.game"
	_expect(_helper.announce("Room4", true, "1.0", "Draft") == OK, "announce Room4")
	r = yield(_wait("announce_result"), "completed")
	_helper.game = GAME
	if not _check(r != null and r[0], "Room4 announced in another game: %s" % [r]):
		return
	_helper.plugin = ben
	_expect(_helper.set_lobby_data("Room2", true, "0.9.3", "Constructed - Free") == OK, "d: Room2")
	r = yield(_wait("announce_result"), "completed")
	if not _check(r != null and r[0] and r[1].host == "Ben" and r[1].mode == "Constructed - Free",
			"Room2 listed by d:: %s" % [r]):
		return

	# Browse: this game's lobbies only, newest first, every field.
	_expect(_helper.browse() == OK, "browse")
	r = yield(_wait("lobbies_listed"), "completed")
	if not _check(r != null and r[0] == 3 and _sessions(r[1]) == ["Room1", "Room3", "Room5"]
			and r[2] == "", "browse lists Room1, Room3, Room5 on one page: %s" % [r]):
		return
	if not _check(_names(r[1]) == ["Room5", "Room3", "Room1"], "newest first: %s" % [_names(r[1])]):
		return
	var room1 := _find(r[1], "Room1")
	var room3 := _find(r[1], "Room3")
	var room5 := _find(r[1], "Room5")
	if not _check(room1.host == "Ana" and room1.players == 2 and room1.max_players == 4
			and not room1.password and room1.version == "1.0" and room1.mode == "Draft"
			and room1.description == "Friendly games" and room1.age >= 0, "Room1's entry: %s" % [room1]):
		return
	if not _check(room3.host == "Cid" and room3.players == 2 and room3.max_players == 2
			and not room3.password and room3.mode == "Ranked" and room3.description == "",
			"Room3's entry: %s" % [room3]):
		return
	if not _check(room5.host == "Gus" and room5.players == 1 and room5.max_players == 3
			and room5.password and room5.version == "1.1" and room5.description == LONG_DESCRIPTION,
			"Room5's entry: %s" % [room5]):
		return

	# Filters and order.
	for case in [[["o"], ["Room1", "Room3"]], [["f"], ["Room1", "Room5"]], [["fo"], ["Room1"]],
			[["", "", "Ranked"], ["Room3"]], [["", "2.0"], []], [["", "1.0", "Draft"], ["Room1"]],
			[["", "1.1"], ["Room5"]]]:
		var args: Array = case[0]
		while args.size() < 3:
			args.append("")
		_expect(_helper.browse(args[0], args[1], args[2]) == OK, "browse %s" % [args])
		r = yield(_wait("lobbies_listed"), "completed")
		if not _check(r != null and _sessions(r[1]) == case[1] and r[0] == case[1].size(),
				"browse %s lists %s: %s" % [args, case[1], r]):
			return
	_expect(_helper.browse("", "", "", "f") == OK, "browse fullest first")
	r = yield(_wait("lobbies_listed"), "completed")
	if not _check(r != null and _names(r[1]) == ["Room3", "Room1", "Room5"],
			"fullest first (then newest): %s" % [_names(r[1]) if r != null else r]):
		return

	# Small pages (50-byte requests earn 150-byte pages, less than the 3 entries' 168 bytes):
	# walking the cursor yields every lobby exactly once.
	_helper.request_size = 50
	_expect(_helper.browse() == OK, "browse with small pages")
	var seen := []
	var pages := 0
	while true:
		r = yield(_wait("lobbies_listed"), "completed")
		if not _check(r != null and r[0] == 3, "a small page: %s" % [r]):
			return
		pages += 1
		seen += _names(r[1])
		if r[2] == "" or pages == 10:
			break
		_expect(_helper.next_page(r[2]) == OK, "next page")
	_helper.request_size = 400
	if not _check(seen == ["Room5", "Room3", "Room1"] and r[2] == "" and pages >= 2,
			"small pages hold every lobby once, newest first: %d pages, %s" % [pages, seen]):
		return

	# Unpadded, the newest entry cannot fit: the helper says so instead of paging in place.
	_helper.request_size = 0
	_expect(_helper.browse() == OK, "browse unpadded")
	r = yield(_wait("lobbies_listed", true), "completed")
	_helper.request_size = 400
	if not _check(r != null and r[0] == "browse" and r[1] == "page_too_small",
			"an unpadded browse: page too small: %s" % [r]):
		return

	# Quick join: the fullest lobby with a free slot and no password.
	_expect(_helper.quick_join() == OK, "quick join")
	r = yield(_wait("quick_join_found"), "completed")
	if not _check(r != null and r[0].get("session") == "Room1" and r[0].host == "Ana"
			and r[0].players == 2 and r[0].max_players == 4, "quick join finds Room1: %s" % [r]):
		return
	_expect(_helper.quick_join("1.1") == OK, "quick join 1.1")
	r = yield(_wait("quick_join_found"), "completed")
	if not _check(r != null and r[0].empty(), "none of version 1.1 without a password: %s" % [r]):
		return

	# The compatible listing shows d: sessions only.
	_expect(_helper.list_compatible() == OK, "l:")
	r = yield(_wait("compat_listed"), "completed")
	if not _check(r != null and r[0].size() == 1 and _matches(r[0][0], {"session": "Room2",
			"host": "Ben", "players": 1, "max_players": 2, "version": "0.9.3",
			"mode": "Constructed - Free"}),
			"l: lists Room2 only: %s" % [r]):
		return

	# Chat through Ana's socket reaches Eve's, followed by the player list.
	_helper.plugin = ana
	_expect(_helper.send_chat("Room1", "Ana", "hello: all") == OK, "chat")
	yield(_sleep(0.5), "completed")
	var at: int = eve.inbox.find("m:Ana:hello: all")
	if not _check(at >= 0 and at + 1 < eve.inbox.size() and eve.inbox[at + 1].begins_with("i:")
			and "m:Ana:hello: all" in ana.inbox, "chat reaches Room1's players, then i:"):
		return

	# Fields the server would refuse are refused here, before anything reaches the plugin.
	var refused := [
		_helper.announce("Room1", true, "1.0", "a:b"),
		_helper.announce("Room1", true, "1.0", "Draft", _long(65)),
		_helper.announce("Room_1", true),
		_helper.set_lobby_data("Room2", true, "0.9|3", "Draft"),
		_helper.send_chat("Room1", "Ana", "two\nlines"),
		_helper.send_chat("Room1", "Ana", ""),
		_helper.send_chat("Room1", "Ana", _long(201)),
		_helper.browse("z"),
		_helper.browse("ff"),
		_helper.browse("", "", "", "x"),
		_helper.quick_join("[1]"),
	]
	if not _check(refused == _repeat(ERR_INVALID_PARAMETER, refused.size()),
			"bad fields refused: %s" % [refused]):
		return
	_helper.game = "no spaces"
	if not _check(_helper.browse() == ERR_INVALID_PARAMETER, "bad game refused"):
		return
	_helper.game = GAME

	# Unlisting is confirmed by the lobby's absence.
	_helper.plugin = cid
	_expect(_helper.announce("Room3", false, "1.0", "Ranked") == OK, "unlist Room3")
	r = yield(_wait("announce_result"), "completed")
	if not _check(r != null and r[0] and r[1].empty(), "Room3 unlisted: %s" % [r]):
		return
	_helper.plugin = gus
	_expect(_helper.set_lobby_data("Room2", false, "", "") == OK, "d: Room2 by a player not its host")
	r = yield(_wait("announce_result"), "completed")
	if not _check(r != null and not r[0] and r[1] == "still_listed",
			"d: from another session's host changes nothing: %s" % [r]):
		return

	# A started session leaves the list at once.
	ana.send("s:Room1:Ana")
	yield(_sleep(0.3), "completed")
	ana.started = true
	eve.started = true
	_expect(_helper.browse() == OK, "browse after the start")
	r = yield(_wait("lobbies_listed"), "completed")
	if not _check(r != null and r[0] == 1 and _names(r[1]) == ["Room5"],
			"Room1 left the list when it started: %s" % [r]):
		return

	# Every datagram the players' sockets got is one the plugin reads and ignores (or expects).
	for player in _players:
		for text in player.inbox:
			if not (text.begins_with("i:") or text.begins_with("m:") or text == "a:1:ok"
					or (player.started and text.begins_with("s:"))
					or (player == gus and text == "error:non_host_player")):
				_fail("%s's socket got %s" % [player.name, text])
				return
	# (error:non_host_player is one of the two errors the plugin lets pass.)
	_ok("the players' sockets got only i:, m:, a:1:ok, s: and Gus's error:non_host_player")

	# Loss: a server that never answers makes a request fail after `tries` sends.
	var sink := PacketPeerUDP.new()
	var sink_port := 47000
	while sink.listen(sink_port, "127.0.0.1") != OK and sink_port < 47100:
		sink_port += 1
	_helper.server_port = sink_port
	_helper.tries = 3
	_helper.retry_interval = 0.1
	_expect(_helper.browse() == OK, "browse a silent server")
	r = yield(_wait("lobbies_listed", true), "completed")
	var sent := sink.get_available_packet_count()
	if not _check(r != null and r[0] == "browse" and r[1] == "timeout" and sent == 3,
			"a silent server: timeout after %d sends: %s" % [sent, r]):
		return

	print("GODOT LOBBY TEST PASSED")
	quit(0)


func _player(player: String, session: String) -> Player:
	var p := Player.new(player, session, _ip, _port)
	_players.append(p)
	return p


# Sends h:/c: every 0.5 s, as the plugin does, until the player list comes back.
func _enter(player: Player, text: String) -> bool:
	for _i in range(10):
		player.send(text)
		yield(_sleep(0.5), "completed")
		for reply in player.inbox:
			if reply.begins_with("i:"):
				player.in_session = true
				return true
			if reply.begins_with("error"):
				_fail("%s: %s" % [text, reply])
				return false
	_fail("%s: no reply" % text)
	return false


# Each frame: read the players' sockets; every 0.5 s, ping as the plugin does.
func _pump() -> void:
	var now := OS.get_ticks_msec() / 1000.0
	var ping := now >= _ping_at
	if ping:
		_ping_at = now + 0.5
	for player in _players:
		while player._server.get_available_packet_count() > 0:
			player.inbox.append(player._server.get_packet().get_string_from_utf8())
		if ping and player.in_session and not player.started:
			player.send("p:%s:%s" % [player.session, player.name])


# The next helper signal: its arguments, or null (and the test fails) when it was another
# signal (request_failed, say) or nothing came within 10 s. `failure_expected` takes
# request_failed as the answer.
func _wait(signal_name: String, failure_expected := false):
	yield(self, "idle_frame")
	var deadline := OS.get_ticks_msec() + 10000
	while _results.empty() and OS.get_ticks_msec() < deadline:
		yield(self, "idle_frame")
	if _results.empty():
		_fail("no %s within 10 s" % signal_name)
		return null
	var got: Array = _results.pop_front()
	if got[0] == signal_name or (failure_expected and got[0] == "request_failed"):
		return got[1]
	_fail("expected %s, got %s" % [signal_name, got])
	return null


func _sleep(seconds: float):
	yield(create_timer(seconds), "timeout")


func _on_lobbies_listed(total, lobbies, next_cursor) -> void:
	_results.append(["lobbies_listed", [total, lobbies, next_cursor]])


func _on_quick_join_found(lobby) -> void:
	_results.append(["quick_join_found", [lobby]])


func _on_compat_listed(lobbies) -> void:
	_results.append(["compat_listed", [lobbies]])


func _on_announce_result(ok, detail) -> void:
	_results.append(["announce_result", [ok, detail]])


func _on_request_failed(request, error) -> void:
	_results.append(["request_failed", [request, error]])


# Whether `lobby` has every key of `expected` with its value (== on Dictionaries compares
# references in Godot 3).
static func _matches(lobby: Dictionary, expected: Dictionary) -> bool:
	for key in expected:
		if not lobby.has(key) or typeof(lobby[key]) != typeof(expected[key]) or lobby[key] != expected[key]:
			return false
	return true


# The lobbies' session names, in their order.
static func _names(lobbies: Array) -> Array:
	var names := []
	for lobby in lobbies:
		names.append(lobby.session)
	return names


# The lobbies' session names, sorted.
static func _sessions(lobbies: Array) -> Array:
	var names := []
	for lobby in lobbies:
		names.append(lobby.session)
	names.sort()
	return names


static func _find(lobbies: Array, session: String) -> Dictionary:
	for lobby in lobbies:
		if lobby.session == session:
			return lobby
	return {}


static func _long(length: int) -> String:
	var text := ""
	while text.length() < length:
		text += "x"
	return text


static func _repeat(value, count: int) -> Array:
	var list := []
	for _i in range(count):
		list.append(value)
	return list


func _ok(what: String) -> void:
	print("ok: ", what)


func _check(condition: bool, what: String) -> bool:
	if condition:
		_ok(what)
	else:
		_fail(what)
	return condition


func _expect(condition: bool, what: String) -> void:
	if not condition:
		_fail("refused: " + what)


func _fail(what: String) -> void:
	if _failed:
		return
	_failed = true
	print("FAIL: ", what)
	quit(1)
