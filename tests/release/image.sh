#!/usr/bin/env bash
# tests/release/image.sh [DIST]: the Containerfile's scratch images of a release (dist/ by
# default), built and run with podman, offline:
#   - one image per architecture, holding /vigil and nothing else, byte-identical to DIST's;
#   - `podman run` with vigil as PID 1: the app's exit status, an orphan cleaned up, and
#     `podman stop` drained through vigil well before podman's own SIGKILL; the arm64 image under
#     qemu-aarch64-static (mounted in as the entrypoint);
#   - `podman run --init --init-path=DIST/vigil-linux-amd64`: vigil as podman's init.
# Needs root, podman, qemu-user-static and busybox-static (the app, mounted into the container).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
dist=$(cd "${1:-$repo/dist}" && pwd)
arches=(amd64 arm64)

fails=0 checks=0
ok() { checks=$((checks + 1)); echo "ok   $*"; }
bad() { checks=$((checks + 1)); fails=$((fails + 1)); echo "FAIL $*"; }
expect() { # expect WHAT GOT WANT
	if [[ $2 == "$3" ]]; then ok "$1"; else bad "$1: got '$2', want '$3'"; fi
}
has() { # has WHAT TEXT NEEDLE
	if grep -qF -- "$3" <<<"$2"; then ok "$1"; else bad "$1: no '$3' in: $2"; fi
}

scratch=$(mktemp -d "${TMPDIR:-/tmp}/vigil-image-test.XXXXXX")
tags=() containers=()
cleanup() {
	((${#containers[@]} == 0)) || podman rm -f "${containers[@]}" >/dev/null 2>&1 || true
	((${#tags[@]} == 0)) || podman rmi -f "${tags[@]}" >/dev/null 2>&1 || true
	rm -rf "$scratch"
}
trap cleanup EXIT

# The context is the Containerfile and the binaries, nothing else.
mkdir -p "$scratch/ctx/dist"
cp "$repo/Containerfile" "$scratch/ctx/"
cp "$dist"/vigil-linux-* "$scratch/ctx/dist/"
for arch in "${arches[@]}"; do
	tag=localhost/vigil-release-test:$arch-$$
	if podman build -q --platform "linux/$arch" -f "$scratch/ctx/Containerfile" -t "$tag" \
		"$scratch/ctx" >/dev/null 2>"$scratch/build.err"; then
		tags+=("$tag")
		ok "podman build --platform linux/$arch"
	else
		bad "podman build --platform linux/$arch: $(cat "$scratch/build.err")"
		continue
	fi
	expect "$arch image: architecture" "$(podman image inspect -f '{{.Architecture}}' "$tag")" "$arch"
	root=$(podman image mount "$tag")
	expect "$arch image: holds /vigil only" "$(cd "$root" && find . -mindepth 1 | sort | tr '\n' ' ')" "./vigil "
	if cmp -s "$root/vigil" "$dist/vigil-linux-$arch"; then
		ok "$arch image: /vigil is dist/vigil-linux-$arch"
	else
		bad "$arch image: /vigil differs from dist/vigil-linux-$arch"
	fi
	podman image unmount "$tag" >/dev/null
done

run=(podman run --rm --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024
	-v /bin/busybox:/bin/busybox:ro)
# The app prints PID 1's command line, leaves an orphan behind and exits 7.
app=(/bin/busybox sh -c 'tr "\0" " " </proc/1/cmdline; echo; (busybox sleep 30 &); exit 7')
for arch in "${arches[@]}"; do
	tag=localhost/vigil-release-test:$arch-$$
	case $arch in
	arm64) how=(-v /usr/bin/qemu-aarch64-static:/qemu:ro --entrypoint /qemu "$tag" /vigil) ;;
	*) how=("$tag") ;;
	esac
	t0=$(date +%s%N)
	code=0
	out=$("${run[@]}" "${how[@]}" -- "${app[@]}" 2>"$scratch/err") || code=$?
	ms=$((($(date +%s%N) - t0) / 1000000))
	err=$(cat "$scratch/err")
	expect "podman run $arch: vigil is PID 1" "$(cut -d' ' -f1-2 <<<"${out/\/qemu /}")" "/vigil --"
	has "podman run $arch: vigil says so" "$err" '"pid":1,"mode":"pid1"'
	expect "podman run $arch: the app's status 7" "$code" 7
	has "podman run $arch: the orphan is ended" "$err" '"msg":"terminating leftovers","count":1'
	if ((ms < 10000)); then ok "podman run $arch: done in $ms ms"; else bad "podman run $arch: $ms ms"; fi
done

# podman stop: SIGTERM to vigil, forwarded to the app, which exits 0; podman's -t 8 never fires.
tag=localhost/vigil-release-test:amd64-$$
cid=$(podman run -d --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
	-v /bin/busybox:/bin/busybox:ro "$tag" -- /bin/busybox sh -c \
	'trap "echo got TERM; exit 0" TERM; echo ready; while :; do busybox sleep 0.1; done')
containers+=("$cid")
for _ in $(seq 100); do
	podman logs "$cid" 2>/dev/null | grep -qx ready && break
	sleep 0.05
done
t0=$(date +%s%N)
podman stop -t 8 "$cid" >/dev/null
ms=$((($(date +%s%N) - t0) / 1000000))
expect "podman stop: exit status" "$(podman inspect -f '{{.State.ExitCode}}' "$cid")" 0
logs=$(podman logs "$cid" 2>&1)
has "podman stop: the app got SIGTERM" "$logs" "got TERM"
has "podman stop: vigil drained" "$logs" '"msg":"drain started"'
if ((ms < 8000)); then ok "podman stop: $ms ms, before podman's SIGKILL at 8 s"; else bad "podman stop: $ms ms"; fi

# podman run --init --init-path: vigil in place of catatonit, as /run/podman-init.
code=0
out=$("${run[@]}" --init --init-path="$dist/vigil-linux-amd64" --entrypoint /bin/busybox "$tag" \
	sh -c 'tr "\0" " " </proc/1/cmdline; echo; exit 5' 2>"$scratch/err") || code=$?
err=$(cat "$scratch/err")
expect "--init-path: vigil is PID 1 as podman-init" "$(cut -d' ' -f1-2 <<<"$out")" "/run/podman-init --"
has "--init-path: vigil says so" "$err" '"pid":1,"mode":"pid1"'
expect "--init-path: the app's status 5" "$code" 5

echo "$((checks - fails)) passed, $fails failed"
((fails == 0))
