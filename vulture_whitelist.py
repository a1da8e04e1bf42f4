"""Names vulture reports as unused that something outside the source calls (tox -e lint).

Each line is a use vulture cannot see, with who makes it. Keep this file short: dead code is
deleted, not listed here.
"""

# ruff: noqa
from benchmarks import _canned_http
from miroir.sim.clock import AutojumpClock
from miroir.transport.http_wire import Answer
from tests.sim.test_trio_internals import FakeScope

# The benchmarks' child processes run these from a source string (`child_script`).
_canned_http.http_answer
_canned_http.serve_forever
# asyncio.Protocol callbacks.
_canned_http.CannedNode.connection_made
_canned_http.CannedNode.data_received
# trio.abc.Clock: trio calls it when the run starts.
AutojumpClock.start_clock
# httptools parser callbacks: the parser calls them by name.
Answer.on_message_begin
Answer.on_header
Answer.on_headers_complete
Answer.on_body
Answer.on_message_complete
# trio's Deadlines reads `_active` (sim/cluster.py patches `Deadlines.add` to keep it right) and
# calls a cancel scope's `_cancel`, which the fake scope stands in for.
_active
FakeScope._cancel
# Settings read by attribute: hypercorn's Config and trio's MockClock.
accesslog
errorlog
keep_alive_timeout
autojump_threshold
# http.server's BaseHTTPRequestHandler calls these by name (the SDK tests' webhook receiver).
do_POST
log_message
# ... and these (tests/cli/fake_admin.py, the stand-in admin API for `miroir ctl`).
do_GET
do_PUT
do_DELETE
