#!/usr/bin/env bash
# The fashion32 tables of docs/benchmarks.md (Table-1 analogue, SSD vs SSD+ with noise, the
# paper's ablation, FID vs NFE). Every row is one `invkit eval` command; rerun any one of them to
# reproduce that row. N sets the number of test images (the paper used 1000; the published
# figures say which N they used), OUT the output root, THREADS torch's CPU threads.
set -euo pipefail
N=${N:-1000}
NS=${NS:-$N}          # images for the secondary tasks
NDPS=${NDPS:-$N}      # images for DPS (250 gradient steps each)
NSWEEP=${NSWEEP:-$NS}  # images for the FID-vs-NFE sweep
NABL=${NABL:-$N}      # images for the noisy SSD vs SSD+ comparison and the ablation
OUT=${OUT:-runs/fashion-eval}
INVKIT=${INVKIT:-invkit}
T=(--threads "${THREADS:-1}" --quiet --seed 0)
table1="input ssd-30 ssd-100 ddnm-30 ddnm-100 ddrm-30 ddrm-100 sdedit"
# paired per-image differences printed under each table (same images, same measurements)
pairs="ssd-30:ddnm-30 ssd-30:ddrm-30 ssd-100:ddnm-100 ssd-100:ddrm-100 ssd-30:ddnm-100"
case "${1:-all}" in
  sr4)        $INVKIT eval --task sr4 --n "$N" --recipes $table1 --compare $pairs --out "$OUT/sr4" "${T[@]}" ;;
  sr4-dps)    $INVKIT eval --task sr4 --n "$NDPS" --recipes dps-250 --out "$OUT/sr4-dps" "${T[@]}" ;;
  sr2)        $INVKIT eval --task sr2 --n "$NS" --recipes $table1 --compare $pairs --out "$OUT/sr2" "${T[@]}" ;;
  inpaint)    $INVKIT eval --task inpaint-box --n "$NS" --recipes $table1 --compare $pairs --out "$OUT/inpaint-box" "${T[@]}" ;;
  deblur)     $INVKIT eval --task deblur --n "$NS" --recipes $table1 --compare $pairs --out "$OUT/deblur" "${T[@]}" ;;
  noisy)      $INVKIT eval --task sr4 --noise-uniform 0.2 --n "$NABL" --recipes input ssd-100 ssd+-100 --compare ssd+-100:ssd-100 --out "$OUT/sr4-noisy" "${T[@]}" ;;
  ablation)   $INVKIT eval --task sr4 --n "$NABL" --recipes ddim-inversion da-inversion ssd-100 --compare da-inversion:ddim-inversion ssd-100:da-inversion --out "$OUT/ablation" "${T[@]}" ;;
  sweep)      $INVKIT eval --task sr4 --n "$NSWEEP" --nfe-sweep --batch-size 32 --out "$OUT/sweep" "${T[@]}" ;;
  all)        for part in sr4 sr4-dps sr2 inpaint deblur noisy ablation sweep; do "$0" "$part"; done ;;
  *)          echo "usage: $0 [sr4|sr4-dps|sr2|inpaint|deblur|noisy|ablation|sweep|all]" >&2; exit 2 ;;
esac
