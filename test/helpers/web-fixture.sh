#!/bin/sh
# A repository with history for the web view's tests (test/e2e/web.test.ts):
# data added and changed, a three-stage local pipeline run by `tdv repro`
# whose last stage writes metrics.json, params.yaml changed across commits,
# a tag, a branch, and a commit message that is HTML.
# Usage: web-fixture.sh DIR TDV_BIN
set -eu
dir=$1
bin=$2
tdv() { node "$bin" "$@"; }
cd "$dir"
export GIT_AUTHOR_NAME='Ada <b>Lovelace</b>' GIT_AUTHOR_EMAIL=ada@example.com GIT_COMMITTER_NAME=Ada GIT_COMMITTER_EMAIL=ada@example.com
c() { GIT_AUTHOR_DATE="$1" GIT_COMMITTER_DATE="$1" git commit -q -m "$2"; }
git init -q -b main
tdv init >/dev/null
mkdir -p data src
printf 'id,value\n1,10\n2,20\n3,30\n' > data/raw.csv
mkdir -p data/images
printf 'aaaa' > data/images/a.txt
printf 'bbbbbbbb' > data/images/b.txt
tdv add data/raw.csv data/images >/dev/null
git add -A
c '2026-07-01T10:00:00Z' 'Add raw data'
cat > src/features.sh <<'SH'
scale=$(sed -n 's/^ *scale: *//p' params.yaml)
awk -F, -v s="$scale" 'NR==1{print "id,feature"; next}{print $1","$2*s}' data/raw.csv > data/features.csv
SH
cat > src/train.sh <<'SH'
awk -F, 'NR>1{n++; t+=$2} END{printf "{\"weights\": %d}\n", t/n}' data/features.csv > model.json
SH
cat > src/evaluate.sh <<'SH'
w=$(sed 's/[^0-9]//g' model.json)
lr=$(sed -n 's/^ *lr: *//p' params.yaml)
awk -v w="$w" -v lr="$lr" 'BEGIN{printf "{\"accuracy\": %.4f, \"loss\": %.4f}\n", 1-1/(w*lr+2), 1/(w*lr+1)}' > metrics.json
SH
cat > params.yaml <<'Y'
features:
  scale: 2
train:
  lr: 0.1
Y
cat > tdv.yaml <<'Y'
stages:
  features:
    cmd: sh src/features.sh
    deps: [src/features.sh, data/raw.csv]
    params: [features.scale]
    outs: [data/features.csv]
  train:
    cmd: sh src/train.sh
    deps: [src/train.sh, data/features.csv]
    outs: [model.json]
  evaluate:
    cmd: sh src/evaluate.sh
    deps: [src/evaluate.sh, model.json]
    params: [train.lr]
    metrics: [metrics.json]
Y
tdv repro >/dev/null
git add -A
c '2026-07-10T10:00:00Z' 'Pipeline: features, train, evaluate'
git tag v1
printf 'id,value\n1,10\n2,20\n3,30\n4,40\n5,50\n' > data/raw.csv
tdv add data/raw.csv >/dev/null
tdv repro >/dev/null
git add -A
c '2026-07-20T10:00:00Z' 'More raw rows <img src=x onerror=alert(1)>'
sed -i 's/lr: 0.1/lr: 0.3/' params.yaml
tdv repro >/dev/null
git add -A
c '2026-08-02T10:00:00Z' 'Raise the learning rate'
git branch experiment
sed -i 's/scale: 2/scale: 5/' params.yaml
printf 'aaaaaa' > data/images/a.txt
printf 'cc' > data/images/c.txt
tdv add data/images >/dev/null
tdv repro >/dev/null
git add -A
c '2026-08-05T10:00:00Z' 'Scale features by 5'
git tag v2
# A branch whose tdv.yaml declares a stage that never ran (tdv.lock does not record it).
git checkout -q -b next
cat >> tdv.yaml <<'Y'
  report:
    cmd: sh src/report.sh
    image: busybox:1.36
    deps: [metrics.json, model.json]
    outs: [report.html]
Y
git add tdv.yaml
c '2026-08-06T10:00:00Z' 'Declare a report stage'
git checkout -q main
