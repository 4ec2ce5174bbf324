#!/usr/bin/env bash
# tests/release/check.sh [--dist DIR]: the release a maintainer verifies, end to end.
#
# Makes a minisign key pair, runs `scripts/release --check-reproducible --key` (two builds of HEAD
# in two directories, compared byte for byte; the first is left in dist/), then checks dist/:
# every sum in SHA256SUMS and every file listed, the signature with `minisign -V` (and that a
# changed SHA256SUMS or binary fails), each binary static, stripped, within the size budget
# (0.6x tini-static's 708,080 B; issue 13's target, 0.5x, is printed beside), its `--version` line (arm64 under qemu-aarch64-static), its embedded dependency
# list (cargo auditable's .dep-v0 section), and its CycloneDX SBOM.
# --dist DIR: check an existing release in DIR (signed with DIR/../minisign.pub) without building.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"

dist='' fails=0 checks=0
while (($#)); do
	case $1 in
	--dist) dist=${2:?}; shift ;;
	*) echo "tests/release/check.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done

ok() { checks=$((checks + 1)); echo "ok   $*"; }
bad() { checks=$((checks + 1)); fails=$((fails + 1)); echo "FAIL $*"; }
check() { # check WHAT CMD...: CMD must succeed.
	local what=$1; shift
	if "$@" >/dev/null 2>&1; then ok "$what"; else bad "$what"; fi
}
refuse() { # refuse WHAT CMD...: CMD must fail.
	local what=$1; shift
	if "$@" >/dev/null 2>&1; then bad "$what"; else ok "$what"; fi
}

scratch=$(mktemp -d "${TMPDIR:-/tmp}/vigil-release-test.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
if [[ -z $dist ]]; then
	dist=$repo/dist
	pub=$scratch/minisign.pub
	minisign -G -W -p "$pub" -s "$scratch/minisign.key" >/dev/null
	t0=$(date +%s)
	if scripts/release --check-reproducible --key "$scratch/minisign.key" --out "$dist"; then
		ok "two builds of $(git rev-parse --short=7 HEAD) are byte-identical ($(($(date +%s) - t0)) s for both)"
	else
		bad "two builds of $(git rev-parse --short=7 HEAD) differ"
	fi
else
	dist=$(cd "$dist" && pwd)
	pub=$(dirname "$dist")/minisign.pub
fi

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
commit=$(git rev-parse --short=7 HEAD)
cd "$dist"

# Sums and signature.
check "sha256sum -c SHA256SUMS" sha256sum --quiet -c SHA256SUMS
for f in *; do
	case $f in
	SHA256SUMS | SHA256SUMS.minisig) ;;
	*) check "$f is in SHA256SUMS" grep -q "  $f\$" SHA256SUMS ;;
	esac
done
check "minisign -V SHA256SUMS" minisign -V -q -p "$pub" -m SHA256SUMS
cp SHA256SUMS "$scratch/SHA256SUMS"
printf '%064d  vigil-linux-extra\n' 0 >>"$scratch/SHA256SUMS"
refuse "minisign -V refuses a changed SHA256SUMS" \
	minisign -V -q -p "$pub" -m "$scratch/SHA256SUMS" -x SHA256SUMS.minisig
mkdir "$scratch/tampered"
cp SHA256SUMS vigil-linux-amd64 "$scratch/tampered/"
printf '\0' >>"$scratch/tampered/vigil-linux-amd64"
refuse "sha256sum -c refuses a changed binary" sh -c "cd '$scratch/tampered' && sha256sum --quiet -c --ignore-missing SHA256SUMS"

# The binaries.
has_deps() {
	grep -qx "vigil $version" <<<"$1" && grep -q '^nix ' <<<"$1" && grep -q '^serde_json ' <<<"$1"
}
# The budget fails the check; the target is reported. 0.2.0's features put amd64 at 0.57x.
tini_static=708080
budget=$((tini_static * 6 / 10))
target=$((tini_static / 2))
declare -A triple=([amd64]=x86_64-unknown-linux-musl [arm64]=aarch64-unknown-linux-musl)
declare -A runner=([arm64]=qemu-aarch64-static)
for arch in amd64 arm64; do
	bin=vigil-linux-$arch
	if [[ ! -f $bin ]]; then
		bad "$bin exists"
		continue
	fi
	desc=$(file -b "$bin")
	check "$bin is static ($desc)" grep -Eq 'statically linked|static-pie linked' <<<"$desc"
	check "$bin is stripped" grep -Eq ', stripped' <<<"$desc"
	size=$(stat -c %s "$bin")
	ratio=$(awk "BEGIN{printf \"%.3f\", $size/$tini_static}")
	check "$bin: $size B <= $budget B (0.6x tini-static): ${ratio}x" test "$size" -le "$budget"
	if ((size <= target)); then
		echo "info $bin: within the 0.5x target ($target B)"
	else
		echo "info $bin: $((size - target)) B over the 0.5x target ($target B)"
	fi
	want="vigil $version ($commit, ${triple[$arch]})"
	got=$(${runner[$arch]:-} "./$bin" --version 2>&1 || true)
	check "$bin --version: $got" test "$got" = "$want"
	deps=$(python3 "$repo/tests/release/deps.py" "$bin" 2>&1 || true)
	check "$bin embeds its dependency list ($(echo $deps | wc -w | awk '{print $1/2}') crates)" \
		has_deps "$deps"
	sbom=$bin.cdx.json
	check "$sbom is a CycloneDX SBOM of vigil $version for ${triple[$arch]} with nix and serde_json" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["bomFormat"] == "CycloneDX" and d["specVersion"] == "1.5"
c = d["metadata"]["component"]
assert (c["name"], c["version"]) == ("vigil", sys.argv[2])
assert {"name": "cdx:rustc:sbom:target:triple", "value": sys.argv[3]} in d["metadata"]["properties"]
names = {x["name"]: x for x in d["components"]}
for n in ("nix", "serde_json", "libc", "argh"):
    assert names[n]["purl"].startswith("pkg:cargo/" + n + "@"), n
' "$sbom" "$version" "${triple[$arch]}"
done

echo "$((checks - fails)) passed, $fails failed"
((fails == 0))
