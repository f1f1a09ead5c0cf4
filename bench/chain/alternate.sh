#!/bin/bash
# Alternating arms of run.sh, since timing alone flips the outcome (FINDINGS, "The stream chain
# that remained"): alternate.sh ROUNDS label 'node flags' [PATCH=file.mjs] label 'flags' ...
#   bench/chain/alternate.sh 12 default '' off '--no-allocation-site-pretenuring'
# Each arm is `label 'flags'`; a flags string may start with PATCH=name.mjs (a bench/chain patch,
# patch-noop.mjs otherwise). Prints "label promoted-B/request" per run.
cd "$(dirname "$0")/../.."
rounds=$1; shift
for _ in $(seq "$rounds"); do
  args=("$@")
  for ((j = 0; j < ${#args[@]}; j += 2)); do
    label=${args[j]}; flags=${args[j+1]}; patch=patch-noop.mjs
    if [[ $flags == PATCH=* ]]; then patch=${flags%% *}; patch=${patch#PATCH=}; flags=${flags#PATCH=$patch}; fi
    r=$(GC=1 RATE=5000 CLIENT=h2 CONNS=4 N=10000 PATCH=$PWD/bench/chain/$patch bench/chain/run.sh $flags)
    echo "$label $(echo "$r" | grep -o 'promoted [0-9]*' | awk '{print $2}')"
  done
done
