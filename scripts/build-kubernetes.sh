#!/usr/bin/env bash
# Build a real Kubernetes 1.20.2 (kube-apiserver, kube-controller-manager, kube-scheduler, kubelet,
# kubectl and the static pause binary) from Debian bookworm's own `kubernetes` source package, as
# ../shared/notes/kubernetes.md records. Cached per machine: a second run returns at once.
#
#   ${OPSCHECK_CACHE:-$HOME/.cache/opscheck}/kubernetes-1.20.2/bin/   binaries + .complete stamp
#
# Cold: ~8 min on 2 cores, a 4 GB tree in a temp dir that is deleted afterwards. /etc/apt is never
# changed: the source package is fetched with a private apt configuration whose deb-src lines are
# derived from the machine's own Debian sources.
set -euo pipefail

VERSION=1.20.2
cache_root="${OPSCHECK_CACHE:-$HOME/.cache/opscheck}"
dest="$cache_root/kubernetes-$VERSION"
bin="$dest/bin"
stamp="$bin/.complete"
binaries=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl pause)
packages=(golang-go rsync etcd-server docker.io busybox-static gcc make dpkg-dev)

start=$SECONDS
say() { printf '[k8s build %02d:%02d] %s\n' $(((SECONDS - start) / 60)) $(((SECONDS - start) % 60)) "$*"; }
die() {
  say "FAILED: $*" >&2
  exit 1
}

complete() {
  [ -f "$stamp" ] || return 1
  local b
  for b in "${binaries[@]}"; do [ -x "$bin/$b" ] || return 1; done
}

if complete; then
  say "cached: $bin"
  exit 0
fi

mkdir -p "$dest"
# One build at a time per machine; a waiting run finds the cache filled by the other.
exec 9>"$dest/.lock"
if ! flock -n 9; then
  say "another build holds $dest/.lock; waiting"
  flock 9
fi
if complete; then
  say "cached: $bin"
  exit 0
fi

# --- Debian packages -------------------------------------------------------------------------
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    die "missing Debian packages: ${missing[*]} (install them with: sudo apt-get install -y ${missing[*]})"
  fi
  say "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
  apt-get update -qq || die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
    die "apt-get install ${missing[*]} failed"
fi

# --- temp work dir (deleted on exit, success or not) -----------------------------------------
work="$(mktemp -d "${TMPDIR:-/tmp}/opscheck-k8s-build.XXXXXX")"
log="$dest/build.log"
: >"$log"
cleanup() {
  local rc=$?
  if [ -n "${make_pid:-}" ]; then kill -- "-$make_pid" 2>/dev/null || true; fi
  chmod -R u+w "$work" 2>/dev/null || true # the Go module cache is read-only
  rm -rf "$work"
  if [ $rc -ne 0 ]; then
    echo "[k8s build] the last lines of $log:" >&2
    tail -n 25 "$log" >&2 || true
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
say "work dir $work, log $log"

# --- private apt configuration: deb + deb-src lines from the machine's Debian sources ----------
apt_dir="$work/apt"
mkdir -p "$apt_dir/parts" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
list="$apt_dir/sources.list"
: >"$list"
# deb822 files (Types/URIs/Suites/Components/Signed-By), enabled ones only.
for f in /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  awk -v out="$list" '
    function flush() {
      if (uris != "" && suites != "" && enabled != "no" && uris ~ /debian/) {
        opt = (signed != "") ? "[signed-by=" signed "] " : ""
        n = split(uris, u, " "); m = split(suites, s, " ")
        for (i = 1; i <= n; i++) for (j = 1; j <= m; j++) {
          print "deb " opt u[i] " " s[j] " " comps >> out
          print "deb-src " opt u[i] " " s[j] " " comps >> out
        }
      }
      uris = ""; suites = ""; comps = ""; signed = ""; enabled = ""
    }
    /^[ \t]*#/ { next }
    /^[ \t]*$/ { flush(); next }
    { key = $1; sub(/:$/, "", key); $1 = ""; sub(/^ +/, "") }
    key == "URIs" { uris = $0 } key == "Suites" { suites = $0 }
    key == "Components" { comps = $0 } key == "Signed-By" { signed = $0 }
    key == "Enabled" { enabled = $0 }
    END { flush() }
  ' "$f"
done
# one-line files
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
  [ -f "$f" ] || continue
  grep -E '^[[:space:]]*deb[[:space:]].*debian' "$f" | while read -r line; do
    echo "$line" >>"$list"
    echo "${line/deb/deb-src}" >>"$list"
  done || true
done
grep -q '^deb-src' "$list" || die "no Debian apt source found in /etc/apt to derive a deb-src line from"
apt_opts=(
  -o "Dir::Etc::SourceList=$list" -o "Dir::Etc::SourceParts=$apt_dir/parts"
  -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
  -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache=" -o "APT::Sandbox::User=root"
)
say "apt-get update (private config: $(grep -c '^deb-src' "$list") deb-src lines)"
apt-get "${apt_opts[@]}" update -qq >>"$log" 2>&1 || die "apt-get update with the private config failed"

# --- source package + reflect2 1.0.2 -----------------------------------------------------------
src="$work/src"
mkdir -p "$src"
say "apt-get source kubernetes"
(cd "$src" && apt-get "${apt_opts[@]}" source -qq kubernetes >>"$log" 2>&1) ||
  die "apt-get source kubernetes failed"
tree="$(find "$src" -mindepth 1 -maxdepth 1 -type d -name 'kubernetes-*' | head -n 1)"
[ -n "$tree" ] && [ -f "$tree/Makefile" ] && [ -d "$tree/vendor" ] ||
  die "unpacked source tree not found (or no vendor/) under $src"
grep -q "$VERSION" "$tree/debian/changelog" 2>/dev/null ||
  say "warning: debian/changelog does not mention $VERSION"
say "source tree $(basename "$tree")"

say "apt-get download golang-github-modern-go-reflect2-dev"
(cd "$work" && apt-get "${apt_opts[@]}" download -qq golang-github-modern-go-reflect2-dev >>"$log" 2>&1) ||
  die "apt-get download golang-github-modern-go-reflect2-dev failed"
dpkg-deb -x "$work"/golang-github-modern-go-reflect2-dev_*.deb "$work/reflect2" ||
  die "cannot unpack golang-github-modern-go-reflect2-dev"
r2="$work/reflect2/usr/share/gocode/src/github.com/modern-go/reflect2"
[ -f "$r2/reflect2.go" ] || die "reflect2 source not found in the Debian package"

# --- the two fixes ---------------------------------------------------------------------------
say "fix 1: vendor/github.com/modern-go/reflect2 <- Debian's reflect2 1.0.2"
rm -rf "$tree/vendor/github.com/modern-go/reflect2"
mkdir -p "$tree/vendor/github.com/modern-go/reflect2"
cp -a "$r2"/. "$tree/vendor/github.com/modern-go/reflect2/"
find "$tree/vendor/github.com/modern-go/reflect2" -name '*_test.go' -delete

say "fix 2: oom_score_adj 0 (no CAP_SYS_RESOURCE here)"
sandbox="$tree/pkg/kubelet/dockershim/docker_sandbox.go"
policy="$tree/pkg/kubelet/qos/policy.go"
sed -i -E 's/(defaultSandboxOOMAdj[[:space:]]+int[[:space:]]*=[[:space:]]*)-?[0-9]+/\10/' "$sandbox"
sed -i -E 's/(guaranteedOOMScoreAdj[[:space:]]+int[[:space:]]*=[[:space:]]*)-?[0-9]+/\10/' "$policy"
grep -Eq 'defaultSandboxOOMAdj[[:space:]]+int[[:space:]]*=[[:space:]]*0$' "$sandbox" ||
  die "could not patch defaultSandboxOOMAdj in $sandbox"
grep -Eq 'guaranteedOOMScoreAdj[[:space:]]+int[[:space:]]*=[[:space:]]*0$' "$policy" ||
  die "could not patch guaranteedOOMScoreAdj in $policy"

# --- make ------------------------------------------------------------------------------------
gopath="$work/gopath"
mkdir -p "$gopath/src/k8s.io"
ln -s "$tree" "$gopath/src/k8s.io/kubernetes"
export GOPATH="$gopath" GOCACHE="$work/gocache" GOFLAGS="" GOTOOLCHAIN=local GOPROXY=off
export KUBE_GIT_VERSION="v$VERSION" KUBE_GIT_TREE_STATE=clean KUBE_GIT_MAJOR=1 KUBE_GIT_MINOR=20
whats='cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler cmd/kubelet cmd/kubectl'
say "make WHAT='$whats' ($(go version | awk '{print $3}'); ~8 min cold; output in $log)"
# In a session of its own, so that an interrupted build stops the whole make tree.
setsid bash -c 'cd "$1" && exec make WHAT="$2"' make "$gopath/src/k8s.io/kubernetes" "$whats" \
  >>"$log" 2>&1 &
make_pid=$!
while kill -0 "$make_pid" 2>/dev/null; do
  sleep 30
  kill -0 "$make_pid" 2>/dev/null && say "make … $(tail -n 1 "$log" | cut -c1-90)"
done
wait "$make_pid" || { make_pid=; die "make failed"; }
make_pid=
out="$tree/_output/local/bin/linux/$(go env GOARCH)"
[ -d "$out" ] || out="$tree/_output/bin"

say "gcc -static pause"
gcc -Os -Wall -Werror -static -DVERSION=v3.2-opscheck -o "$work/pause" "$tree/build/pause/linux/pause.c" \
  >>"$log" 2>&1 || die "building the pause binary failed"

# --- install into the cache ------------------------------------------------------------------
rm -rf "$bin.tmp" "$bin"
mkdir -p "$bin.tmp"
for b in kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl; do
  [ -x "$out/$b" ] || die "make did not produce $b (looked in $out)"
  cp "$out/$b" "$bin.tmp/"
done
cp "$work/pause" "$bin.tmp/"
"$bin.tmp/kube-apiserver" --version >>"$log" 2>&1 || die "the built kube-apiserver does not run"
printf 'kubernetes %s from %s, built %s in %ss\n' "$VERSION" "$(basename "$tree")" \
  "$(date -u +%FT%TZ)" $((SECONDS - start)) >"$bin.tmp/.complete"
mv "$bin.tmp" "$bin"
say "done: $bin ($("$bin/kube-apiserver" --version))"
