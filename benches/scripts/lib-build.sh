# lib-build.sh - sourced by the serve benchmark scripts: get a release `mailsim` binary.
#
# get_mailsim ROOT DEST   copies a release mailsim to DEST and prints what it is on stderr.
#   MAILSIM_BIN=path   use that binary as is (no build)
#   BUILD_REV=<rev>    build the committed tree of <rev> (e.g. HEAD) from `git archive` in a
#                      temp dir with its own target dir (BUILD_TARGET_DIR, default
#                      /tmp/mailsim-bench-target, reused between runs): immune to uncommitted
#                      edits in the checkout, and leaves the checkout's target/ alone.
#   SKIP_BUILD=1       use ROOT/target/release/mailsim as is
#   default            cargo build --release -p mailsim in ROOT (the working tree as it is)
get_mailsim() {
  local root=$1 dest=$2 src
  if [[ -n ${MAILSIM_BIN:-} ]]; then
    src=$MAILSIM_BIN
    echo "## using MAILSIM_BIN=$src" >&2
  elif [[ -n ${BUILD_REV:-} ]]; then
    local rev tree tdir=${BUILD_TARGET_DIR:-/tmp/mailsim-bench-target}
    rev=$(git -C "$root" rev-parse --verify "$BUILD_REV^{commit}")
    tree=$(mktemp -d /tmp/mailsim-src.XXXXXX)
    git -C "$root" archive "$rev" | tar -x -C "$tree"
    echo "## building $rev (git archive) in $tree, CARGO_TARGET_DIR=$tdir" >&2
    (cd "$tree" && CARGO_TARGET_DIR=$tdir cargo build --release -q -p mailsim) || { rm -rf "$tree"; return 1; }
    rm -rf "$tree"
    src=$tdir/release/mailsim
  else
    if [[ ${SKIP_BUILD:-0} != 1 ]]; then
      echo "## cargo build --release -p mailsim (working tree $root)" >&2
      (cd "$root" && cargo build --release -q -p mailsim) || return 1
    fi
    src=$root/target/release/mailsim
    echo "## using $src ($(git -C "$root" rev-parse --short HEAD 2>/dev/null)$(git -C "$root" diff --quiet HEAD 2>/dev/null || echo ' + uncommitted edits'))" >&2
  fi
  cp "$src" "$dest"
  echo "## binary md5 $(md5sum < "$dest" | cut -c1-12)" >&2
}
