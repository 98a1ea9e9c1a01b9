#!/usr/bin/env bash
# Runs the README's two quick-start commands (bash tools/demo.sh, then bash tools/test.sh), as
# written and as root, in a fresh minimal Debian 12 root: what a new user with a clean machine
# gets. It catches a dependency that only happens to be installed on the development machines.
# Then the Debian package (tools/package-check.sh): built with CPack, installed with apt, and the
# demo trained from the installed package.
#
#   bash tools/fresh-check.sh [--rebuild-root] [--keep] [--package-only]
#
# --package-only runs the package check alone in the fresh root (no demo, no test suite).
#
# The base system (debootstrap --variant=minbase bookworm, plus git and ca-certificates) is made
# once from the Debian mirror this machine's apt uses and cached as a tarball outside the clone
# ($DTRAIN_FRESH_CACHE, default /var/cache/dtrain-fresh); every run unpacks a new copy of it, so
# nothing from an earlier run survives except the downloaded .deb files (apt's cache, which
# changes what is downloaded, not what is installed). The repository's committed HEAD is cloned
# into the copy. When the host has the CUDA toolkit (/usr/local/cuda), it is bind-mounted
# read-only, so the fresh build includes the CUDA backend as on a GPU user's machine.
#
# The checks run in their own mount and PID namespaces: the mounts and any process left behind
# vanish with them, and a trap unmounts and deletes the copy on every exit path.
# Needs root (debootstrap, chroot, mounts). Prints the time of each part.
set -euo pipefail

# Inside the fresh root the README's test command must not start another fresh check.
if [ -n "${DTRAIN_FRESH_CHECK_INSIDE:-}" ]; then
  echo "fresh-check: already inside a fresh root; not starting another" >&2
  exit 0
fi

repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${DTRAIN_FRESH_CACHE:-/var/cache/dtrain-fresh}
suite=bookworm
tarball="$cache/$suite-minbase.tar"
cuda_dirs=()

usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; }

now() { date +%s; }
took() { # label, start second
  local s=$(($(now) - $2))
  printf 'fresh-check: %-22s %4d min %02d s\n' "$1" $((s / 60)) $((s % 60))
}

# The archive URIs of this machine's apt sources (one-line and deb822 formats), comments skipped.
host_apt_uris() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    sed -n -e 's/^[[:space:]]*deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\{0,1\}\([^[:space:]]\+\).*/\2/p' \
      -e 's/^[[:space:]]*URIs:[[:space:]]*\([^[:space:]]\+\).*/\1/p' "$f"
  done
}
# The main Debian archive and the security archive among them (empty when there is none).
host_mirror() { host_apt_uris | grep -v security | grep -m1 '/debian/\{0,1\}$' || true; }
host_security_mirror() { host_apt_uris | grep -m1 '/debian-security/\{0,1\}$' || true; }

# ---- inside the private namespaces: mount, clone, run the two commands ----------------------
# Unmounts everything mounted below the fresh root, deepest first.
unmount_all() {
  local m
  awk -v r="$root" '$5 == r || index($5, r "/") == 1 { print $5 }' /proc/self/mountinfo |
    sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

inside_namespaces() {
  trap unmount_all EXIT

  # The root is a mount point of its own, as / is on a real machine: unshare --mount, which
  # changes the propagation of /, fails in a chroot whose / is a plain folder ("cannot change
  # root filesystem propagation"), and the namespace cluster of tests/multinode needs it.
  mount --bind "$root" "$root"
  mount -t proc proc "$root/proc"
  mount -t sysfs -o ro sysfs "$root/sys"
  # The cgroup hierarchy, as systemd mounts it on any Debian machine (slurmd of the Slurm tests
  # refuses to start without it); read-only, every mount of it.
  if [ -d /sys/fs/cgroup ] && [ -d "$root/sys/fs/cgroup" ]; then
    mount --rbind /sys/fs/cgroup "$root/sys/fs/cgroup"
    awk -v r="$root/sys/fs/cgroup" '$5 == r || index($5, r "/") == 1 { print $5 }' \
      /proc/self/mountinfo | while read -r m; do mount -o remount,bind,ro "$m"; done
  fi
  mount --bind /dev "$root/dev"
  mount -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts"
  mount -t tmpfs -o mode=1777 shm "$root/dev/shm"
  cp -L /etc/resolv.conf "$root/etc/resolv.conf"
  # debootstrap writes no /etc/hosts, which the Debian installer writes on every machine (the
  # namespace cluster of tests/multinode mounts its nodes' hosts files over it)
  if [ ! -e "$root/etc/hosts" ]; then
    printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n' \
      "$(hostname)" >"$root/etc/hosts"
  fi
  mkdir -p "$cache/apt-archives/partial" "$root/var/cache/apt/archives"
  mount --bind "$cache/apt-archives" "$root/var/cache/apt/archives"

  local d path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  for d in "${cuda_dirs[@]}"; do
    mkdir -p "$root$d"
    mount --bind "$d" "$root$d"
    mount -o remount,bind,ro "$root$d"
  done
  if [ -L /usr/local/cuda ] && [ ! -e "$root/usr/local/cuda" ]; then
    cp -P /usr/local/cuda "$root/usr/local/cuda"
  fi
  [ -x "$root/usr/local/cuda/bin/nvcc" ] && path="/usr/local/cuda/bin:$path"

  # The host's TLS trust settings, where it names them (a site CA of an intercepting proxy):
  # without them pip in the root could not reach PyPI through that proxy. Copied in and named
  # by the same variables; nothing else of the host's environment goes in.
  local v trust=()
  for v in PIP_CERT REQUESTS_CA_BUNDLE SSL_CERT_FILE; do
    if [ -n "${!v:-}" ] && [ -f "${!v}" ]; then
      mkdir -p "$root/etc/host-trust"
      cp -L "${!v}" "$root/etc/host-trust/$v.pem"
      trust+=("$v=/etc/host-trust/$v.pem")
    fi
  done

  # A clean environment, as a root login would have: nothing of this shell leaks in (not CI).
  run_in_root() {
    chroot "$root" /usr/bin/env -i HOME=/root PATH="$path" LANG=C.UTF-8 TERM=dumb \
      "${trust[@]}" DTRAIN_FRESH_CHECK_INSIDE=1 /bin/bash -c "cd /root/dtrain && $1"
  }
  local t status=0
  if [ "$package_only" -eq 0 ]; then
    t=$(now)
    echo "fresh-check: == bash tools/demo.sh"
    run_in_root "bash tools/demo.sh" || status=$?
    took "demo" "$t"
    if [ "$status" -eq 0 ]; then
      t=$(now)
      echo "fresh-check: == bash tools/test.sh"
      run_in_root "bash tools/test.sh" || status=$?
      took "tests" "$t"
    fi
  fi
  if [ "$status" -eq 0 ]; then
    t=$(now)
    echo "fresh-check: == bash tools/package-check.sh (cpack -G DEB, apt install, demo from it)"
    run_in_root "bash tools/package-check.sh" || status=$?
    took "package" "$t"
  fi
  return "$status"
}

if [ "${1:-}" = "--inside-namespaces" ]; then
  shift
  root=$1
  package_only=$2
  shift 2
  cuda_dirs=("$@")
  inside_namespaces
  exit
fi

# ---- on the host ---------------------------------------------------------------------------
rebuild=0
keep=0
package_only=0
for arg in "$@"; do
  case "$arg" in
    --rebuild-root) rebuild=1 ;;
    --keep) keep=1 ;;
    --package-only) package_only=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "fresh-check: unknown argument '$arg'" >&2; usage >&2; exit 2 ;;
  esac
done
if [ "$(id -u)" -ne 0 ]; then
  echo "fresh-check: needs root (debootstrap, chroot and mounts)" >&2
  exit 2
fi
command -v unshare >/dev/null || { echo "fresh-check: needs unshare (util-linux)" >&2; exit 2; }
if ! git -C "$repo" rev-parse --verify -q HEAD >/dev/null; then
  echo "fresh-check: $repo is not a git checkout with a commit" >&2
  exit 2
fi
if [ -n "$(git -C "$repo" status --porcelain --untracked-files=no)" ]; then
  echo "fresh-check: note: uncommitted changes are not part of the check (it clones HEAD)" >&2
fi

start_all=$(now)
mkdir -p "$cache"
root=""
checks=""
cleanup() {
  local status=$?
  set +e # a failing step here (wait on a killed process) must not cut the clean-up short
  if [ -n "$checks" ]; then # interrupted: end the checks before deleting their root
    # unshare blocks the catchable signals while it waits; SIGKILL ends it, and --kill-child
    # then ends the namespaces' first process (and so every process in them).
    kill -KILL "$checks" 2>/dev/null
    wait "$checks" 2>/dev/null
  fi
  if [ -n "$root" ] && [ -d "$root" ]; then
    # The mounts lived in the finished namespace; refuse to delete if any is visible here.
    if awk -v r="$root" 'index($5, r "/") == 1 { found = 1 } END { exit !found }' \
      /proc/self/mountinfo; then
      echo "fresh-check: mounts left under $root; not deleting it" >&2
    elif [ "$keep" -eq 1 ]; then
      echo "fresh-check: kept the fresh root in $root"
    else
      rm -rf --one-file-system "$root"
    fi
  fi
  took "total" "$start_all"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mirror=${DTRAIN_FRESH_MIRROR:-$(host_mirror)}
mirror=${mirror:-http://deb.debian.org/debian}
security=${DTRAIN_FRESH_SECURITY_MIRROR:-$(host_security_mirror)}
t=$(now)
if [ "$rebuild" -eq 1 ] || [ ! -s "$tarball" ]; then
  bash "$repo/tools/install-deps.sh" debootstrap
  echo "fresh-check: creating the $suite minbase root from $mirror (cached in $tarball)"
  base=$(mktemp -d "$cache/base.XXXXXX")
  root=$base # deleted by the trap if debootstrap fails
  debootstrap --variant=minbase --include=git,ca-certificates "$suite" "$base" "$mirror" \
    >"$cache/debootstrap.log" 2>&1 || {
    tail -n 20 "$cache/debootstrap.log" >&2
    echo "fresh-check: debootstrap failed (log: $cache/debootstrap.log)" >&2
    exit 1
  }
  rm -rf "$base"/var/cache/apt/archives/*.deb "$base"/var/lib/apt/lists/*
  tar -C "$base" --numeric-owner -cpf "$tarball.partial" .
  mv "$tarball.partial" "$tarball"
  rm -rf --one-file-system "$base"
  root=""
  took "root creation" "$t"
  t=$(now)
fi
root=$(mktemp -d /var/tmp/dtrain-fresh.XXXXXX)
tar -C "$root" --numeric-owner -xpf "$tarball"
chmod 755 "$root"
# The suites a Debian 12 installation has: the release, its updates, security.
{
  echo "deb $mirror $suite main"
  echo "deb $mirror $suite-updates main"
  [ -z "$security" ] || echo "deb $security $suite-security main"
} >"$root/etc/apt/sources.list"
# HEAD as committed (a worktree's HEAD too), not the working tree.
git clone -q --no-checkout "$repo" "$root/root/dtrain"
git -C "$root/root/dtrain" fetch -q "$repo" HEAD
git -C "$root/root/dtrain" checkout -q --detach FETCH_HEAD
echo "fresh-check: root in $root, commit $(git -C "$root/root/dtrain" rev-parse --short HEAD)"
took "root restore" "$t"

for d in /usr/local/cuda-*; do
  [ -d "$d" ] && [ ! -L "$d" ] && cuda_dirs+=("$d")
done
if [ -e /usr/local/cuda ] && ((${#cuda_dirs[@]} == 0)); then
  cuda_dirs+=("$(readlink -f /usr/local/cuda)")
fi
((${#cuda_dirs[@]} == 0)) || echo "fresh-check: CUDA toolkit (read-only): ${cuda_dirs[*]}"

# In the background, so that a signal reaches this shell's traps at once; --kill-child ends the
# namespaces' first process, and with it every process inside, when unshare goes.
DTRAIN_FRESH_CACHE=$cache unshare --mount --propagation private --pid --fork --kill-child \
  bash "$0" --inside-namespaces "$root" "$package_only" "${cuda_dirs[@]}" &
checks=$!
status=0
wait "$checks" || status=$?
checks=""
if [ "$status" -ne 0 ]; then
  echo "fresh-check: FAILED (exit code $status)" >&2
  exit "$status"
fi
if [ "$package_only" -eq 1 ]; then
  echo "fresh-check: passed (the Debian package in a fresh Debian 12 root)"
else
  echo "fresh-check: passed (demo, tests and the Debian package in a fresh Debian 12 root)"
fi
