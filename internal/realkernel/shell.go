package realkernel

// Shell is a few sh functions a Script may start with (Script: realkernel.Shell + "...").
//
//	save_pcrs SUFFIX     every bank's PCRs 0-23 from /sys/class/tpm/tpm0/pcr-<alg>/ to
//	                     $OUT/pcrs-<alg>SUFFIX.txt, as evmctl --pcrs reads them ("PCR-NN: hex")
//	save_ima SUFFIX      the kernel's lists and counters from securityfs to $OUT/<name>SUFFIX
//	wait_for PATH SECS   wait until PATH exists (0) or SECS seconds pass (1)
const Shell = `
save_pcrs() {
	for d in /sys/class/tpm/tpm0/pcr-*; do
		[ -d "$d" ] || continue
		alg=${d##*/pcr-}
		i=0
		while [ $i -lt 24 ]; do
			printf 'PCR-%02d: %s\n' $i "$(cat $d/$i)"
			i=$((i + 1))
		done > $OUT/pcrs-$alg$1.txt
	done
}
save_ima() {
	for f in binary_runtime_measurements ascii_runtime_measurements runtime_measurements_count violations; do
		cat /sys/kernel/security/ima/$f > $OUT/$f$1
	done
}
wait_for() {
	n=0
	while [ ! -e "$1" ]; do
		[ $n -ge $(($2 * 10)) ] && return 1
		sleep 0.1
		n=$((n + 1))
	done
	return 0
}
`
