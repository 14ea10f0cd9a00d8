#!/bin/sh
# build_commit.sh BUILD_DIR: writes BUILD_DIR/build_commit.h, the commit the build is of
# (`git describe --always --dirty`; "unknown" outside a git checkout), for `cuvae --version`
# and report's footer. The Makefile runs it as it starts; the file is rewritten only when the
# commit changes, so an unchanged tree rebuilds nothing and a new commit rebuilds main.o alone.
build_dir=$1
commit=
if [ -e .git ]; then commit=$(git describe --always --dirty --abbrev=7 2>/dev/null); fi
[ -n "$commit" ] || commit=unknown
line="#define CUVAE_BUILD_COMMIT \"$commit\""
header="$build_dir/build_commit.h"
if [ "$(tail -n 1 "$header" 2>/dev/null)" != "$line" ]; then
    mkdir -p "$build_dir"
    printf '// written by scripts/build_commit.sh: the commit this build is of\n%s\n' "$line" > "$header.tmp" &&
        mv -f "$header.tmp" "$header"
fi
