package memory

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// releasePages releases the executable's pages (releaseStartupPages) and
// logs what it did; when says after what.
func releasePages(log *slog.Logger, when string) {
	before, _ := procStatusKiB("RssFile")
	released, err := releaseStartupPages()
	after, _ := procStatusKiB("RssFile")
	if err != nil {
		log.Warn("could not release the executable's pages", "after", when, "err", err)
		return
	}
	log.Info("released the executable's pages", "after", when, "advisedMiB", released>>20,
		"fileBackedMiB", fmt.Sprintf("%.1f -> %.1f", float64(before)/1024, float64(after)/1024))
}

// releaseStartupPages asks the kernel to reclaim the pages of the process's
// own executable that are mapped read-only (code, read-only data, the
// function tables) and returns how many bytes it advised.
//
// Starting weft runs the package initialisers of hundreds of packages
// spread over tens of MiB of code and tables, and the kernel's fault-around
// maps 64 KiB per touch, where the agent at rest runs in a few MiB of it.
// MADV_PAGEOUT reclaims those pages now, as memory pressure would later;
// the pages the agent does use fault back in from the page cache, so what
// stays resident is the working set. Pages another process also maps are
// left alone by the kernel. The ranges are then marked MADV_RANDOM, which
// turns the kernel's read-around off for them, so a page faulting back in
// does not bring its neighbours along.
func releaseStartupPages() (int64, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, err
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	var advised int64
	for _, l := range strings.Split(string(maps), "\n") {
		// start-end perms offset dev inode path
		f := strings.Fields(l)
		if len(f) < 6 || f[5] != exe || len(f[1]) < 2 || f[1][1] == 'w' {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if !ok || err1 != nil || err2 != nil || end <= start {
			continue
		}
		if _, _, e := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_PAGEOUT); e != 0 {
			return advised, fmt.Errorf("madvise(MADV_PAGEOUT) %s: %w", f[0], e)
		}
		if _, _, e := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_RANDOM); e != 0 {
			return advised, fmt.Errorf("madvise(MADV_RANDOM) %s: %w", f[0], e)
		}
		advised += int64(end - start)
	}
	return advised, nil
}

// procStatusKiB reads a "kB" field of /proc/self/status.
func procStatusKiB(field string) (int, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, fmt.Errorf("no %s in /proc/self/status", field)
}
