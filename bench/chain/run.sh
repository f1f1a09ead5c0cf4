#!/bin/bash
# e.g. GC=1 RATE=5000 CLIENT=h2 CONNS=4 N=10000 bench/chain/run.sh  (bad mode: ~1,500 B/request; good: ~95)
# usage: run.sh [node flags...]; env as server.mjs. Prints promoted bytes per request between the marks.
out=$(node --expose-gc --max-semi-space-size=2 --trace-gc-nvp "$@" $(dirname $0)/server.mjs)
echo "$out" | awk -v N=${N:-20000} '/MARK start/{on=1} /MARK end/{on=0} on && /gc=s / {match($0,/promoted=[0-9]+/); p+=substr($0,RSTART+9,RLENGTH-9); s++} on && /gc=mc/ {mc++} /^table=/{t=$0} END {printf "%s | promoted %.0f B/request, scavenges %d, mc %d\n", t, p/N, s, mc}'
