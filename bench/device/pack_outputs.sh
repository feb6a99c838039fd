# Sourced by the device scripts (run.sh, xeon_m1.sh). The device tool returns at most 8 files:
# pack_outputs KEEP_REGEX moves every file under $OUT whose name does not match KEEP_REGEX (the
# JSON lines, the benchmarks' stderr, the build log) into one raw.tar.gz, so that nothing a call
# measured is left behind. Call it from an EXIT trap. The packed files stay readable beside $OUT,
# in $OUT.raw/ (outside what the tool returns), for a command chained after the script.
pack_outputs() {
  local keep=$1
  local raw=()
  for file in "$OUT"/*; do
    [ -f "$file" ] && ! [[ "$(basename "$file")" =~ $keep ]] && raw+=("$(basename "$file")")
  done
  [ "${#raw[@]}" -eq 0 ] && return
  mkdir -p "$OUT.raw" && (cd "$OUT" && cp -f "${raw[@]}" "$OUT.raw/")
  tar -czf "$OUT/raw.tar.gz" -C "$OUT" "${raw[@]}" && (cd "$OUT" && rm -f "${raw[@]}")
}
