package bench

const envFootprintHelper = "WEFT_BENCH_FOOTPRINT_HELPER"

func runFootprintHelper() int { return 0 }
