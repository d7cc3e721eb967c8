# One device call: info, conformance twice, memcheck, the NaN probe, then racecheck while time remains.
B=.gpu/flexattn
export PATH=/usr/local/cuda/bin:$PATH
$B info > $OUT/info.txt 2>&1
{ time $B check --device cuda; } > $OUT/check.txt 2>&1
{ time $B check --device cuda --seed 81; } > $OUT/check-seed81.txt 2>&1
python3 .gpu/nan_probe.py > $OUT/nan-probe.txt 2>&1
{ time timeout 200 compute-sanitizer --tool memcheck --leak-check full $B check --device cuda --seed 82; } > $OUT/memcheck.txt 2>&1
{ time timeout 150 compute-sanitizer --tool racecheck $B check --device cuda --seed 83; } > $OUT/racecheck.txt 2>&1
tail -2 $OUT/*.txt
