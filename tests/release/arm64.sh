#!/usr/bin/env bash
# tests/release/arm64.sh [--bin BINARY] [TEST ARGS...]: the PID 1 part of the integration suite (spawn, exit codes,
# reaping, forwarding, the drain and its deadline, --user, health, --version) against the arm64
# release binary (dist/vigil-linux-arm64 by default) under qemu-aarch64-static, as PID 1 of a
# pid namespace; the apps it starts are the host's own binaries.
#
# Skipped, because qemu-user cannot show them, not because vigil fails them:
#   - subreaper mode (the `::subreaper` variants and the tests that start vigil as a subreaper):
#     qemu refuses PR_SET_CHILD_SUBREAPER, so vigil warns and runs as a plain parent;
#   - what reads vigil's own signal state from /proc: qemu keeps host signals of its own (32
#     ignored, its threads' masks), which the app also inherits across exec;
#   - the health server's connection floods, timed for native speed ("the test never opened 1124
#     connections within 50ms: too loaded to judge" under emulation). All of these run natively
#     in the main suite.
# TEST ARGS go to the test binary (say, --nocapture). The tests run one at a time: emulated,
# vigil is slower, and two at once on a loaded machine stretched some past native time bounds.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
bin=dist/vigil-linux-arm64
if [[ ${1:-} == --bin ]]; then
	bin=${2:?--bin needs a path}
	shift 2
fi
command -v qemu-aarch64-static >/dev/null || {
	echo "tests/release/arm64.sh: needs qemu-aarch64-static (apt-get install qemu-user-static)" >&2
	exit 2
}
# Tests by module, by exact name: `cargo test` filters are substrings (`user::` would also pick
# lockdown::stdio_pipes_go_to_the_user).
modules='^(core|reaping|drain|user|health|signals)::|^cli::version$'
skips=(
	'::subreaper$'
	'^drain::outside_process_is_untouched$'
	'^user::nonroot_runs_app$'
	'^user::nonroot_drain$'
	'^core::app_signal_state::'
	'^core::inherited_ignores_are_reset::'
	'^signals::every_signal_is_forwarded::'
	'^signals::every_signal_static_build$'
	'^health::a_client_is_not_pushed_out'
	'^health::fd_cap_grows_back_when_fds_free_up$'
	'^health::keep_alive_clients_cannot_lock_out_a_new_one$'
	'^health::abuse_does_not_hurt::'
)
skip=$(
	IFS='|'
	echo "${skips[*]}"
)
export TEST_BIN=$bin TEST_BIN_RUNNER=qemu-aarch64-static REQUIRE_ALL_TESTS=1
mapfile -t names < <(cargo test -q --test integration -- --list 2>/dev/null |
	sed -n 's/: test$//p' | grep -E "$modules" | grep -vE "$skip")
((${#names[@]} > 0)) || { echo "tests/release/arm64.sh: no tests selected" >&2; exit 2; }
cargo test --test integration -- --exact "${names[@]}" --test-threads=1 "$@"
