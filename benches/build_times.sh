#!/usr/bin/env bash
# Build times of orch at one or more revisions, one after the other on this machine: the
# figures of BENCHMARKS.md's "Build" table.
#
#   bash benches/build_times.sh [REV ...]        (default: HEAD)
#   ORCH_BUILD_STEPS=debug,test bash benches/build_times.sh 17a2804 HEAD
#
# For each revision: a fresh worktree and a fresh target dir (nothing shared, nothing
# cached), then
#   release  clean `cargo build --release`; touch one file of the load balancer, build again;
#            touch one file of the core (the model's timestamp), build again;
#   debug    the same with `cargo build --bin orch` (the dev profile: incremental
#            compilation), the edit-build loop of a developer; each touch-and-build
#            three times, the median printed;
#   test     `cargo test` of the load balancer's unit tests: built once untimed, then one
#            LB file touched and timed (build + run). In the workspace that is
#            `cargo test -p orch-lb --lib`; in the one-package layout (up to 17a2804) the
#            LB has no crate of its own: `cargo test --lib`, every unit test of the product.
# Prints one markdown row per revision and step.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
steps=${ORCH_BUILD_STEPS:-release,debug,test}
revs=("$@")
[ ${#revs[@]} -eq 0 ] && revs=(HEAD)

seconds() { # runs "$@", prints its wall time in seconds
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null 2>&1
    end=$(date +%s.%N)
    echo "$end - $start" | bc | xargs printf '%.1f'
}

touched_median() { # touches $1 and times "${@:2}", three times; prints the median
    local file=$1 times
    shift
    times=$(for _ in 1 2 3; do touch "$file"; seconds "$@"; echo; done | sort -n)
    echo "$times" | sed -n 2p
}

for rev in "${revs[@]}"; do
    commit=$(git rev-parse --short "$rev")
    work=$(mktemp -d /var/tmp/orch-build-XXXXXX)
    git worktree add --detach "$work/tree" "$commit" >/dev/null 2>&1
    export CARGO_TARGET_DIR="$work/target"
    (
        cd "$work/tree"
        if [ -d crates/orch-lb ]; then
            lb=crates/orch-lb/src/table.rs
            core=crates/orch-core/src/model/timestamp.rs
            unit=(-p orch-lb --lib)
        else
            lb=src/lb/table.rs
            core=src/model/timestamp.rs
            unit=(--lib)
        fi
        if [[ $steps == *release* ]]; then
            clean=$(seconds cargo build --release --locked)
            touch "$lb"
            after_lb=$(seconds cargo build --release --locked)
            touch "$core"
            after_core=$(seconds cargo build --release --locked)
            echo "| $commit | clean \`cargo build --release\` | ${clean} s |"
            echo "| $commit | touch \`$lb\`, \`cargo build --release\` | ${after_lb} s |"
            echo "| $commit | touch \`$core\`, \`cargo build --release\` | ${after_core} s |"
        fi
        if [[ $steps == *debug* ]]; then
            clean=$(seconds cargo build --locked --bin orch)
            after_lb=$(touched_median "$lb" cargo build --locked --bin orch)
            after_core=$(touched_median "$core" cargo build --locked --bin orch)
            echo "| $commit | clean \`cargo build --bin orch\` | ${clean} s |"
            echo "| $commit | touch \`$lb\`, \`cargo build --bin orch\` | ${after_lb} s |"
            echo "| $commit | touch \`$core\`, \`cargo build --bin orch\` | ${after_core} s |"
        fi
        if [[ $steps == *test* ]]; then
            cold=$(seconds cargo test --locked "${unit[@]}" --no-run)
            touch "$lb"
            warm=$(seconds cargo test --locked "${unit[@]}")
            echo "| $commit | \`cargo test ${unit[*]}\` from nothing (build only) | ${cold} s |"
            echo "| $commit | touch \`$lb\`, \`cargo test ${unit[*]}\` (build + run) | ${warm} s |"
        fi
    )
    git worktree remove --force "$work/tree"
    rm -rf "$work"
done
