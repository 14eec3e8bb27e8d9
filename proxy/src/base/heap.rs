//! Giving the allocator's free memory back to the system once start-up is over: loading
//! the configuration (YAML, JSON values, the descriptor pool's work, translation) frees
//! several MiB that glibc keeps in its arenas, and an idle process would carry them as
//! resident memory for its whole life. The same holds for the binary's own code and
//! read-only data: start-up runs (and the kernel's fault-around maps) most of the
//! executable, of which serving uses a small part. Also what the allocator and the
//! process hold, as `/memory` and the `server.memory_*` gauges report it.

/// Returns the free memory the allocator holds at the top of its heaps and in whole free
/// pages to the system (glibc's `malloc_trim`); nothing elsewhere. Costs a walk over the
/// free lists: call it after bursts of allocation such as start-up, not per request.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_free_memory() {
    // SAFETY: malloc_trim takes a plain integer (the padding to keep) and only touches
    // the allocator's own free lists, under its own locks.
    #[allow(unsafe_code)]
    let _ = unsafe { libc::malloc_trim(0) };
}

/// Without glibc: nothing to do.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() {}

/// Unmaps from this process the pages of its own executable's code and read-only data
/// that start-up touched (they stay in the page cache; what serving uses comes back on
/// its first use, one page at a time rather than with the kernel's fault-around, so that
/// only the code in use is resident). Only private read-only mappings of the executable
/// that hold no private copy of a page are dropped: a page that was written (relocated
/// data) would lose its contents. Call once, after start-up.
#[cfg(target_os = "linux")]
pub fn release_startup_code() {
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
        return;
    };
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    for (start, end) in droppable_exe_mappings(&smaps, &exe.to_string_lossy()) {
        // SAFETY: the range is a whole mapping of this process's executable, read-only,
        // private and with no anonymous (written) page, so dropping its pages only makes
        // the next access read them again from the unchanged file; MADV_RANDOM only
        // changes how many neighbouring pages a fault maps.
        #[allow(unsafe_code)]
        unsafe {
            let addr = start as *mut libc::c_void;
            let len = end - start;
            let _ = libc::madvise(addr, len, libc::MADV_RANDOM);
            let _ = libc::madvise(addr, len, libc::MADV_DONTNEED);
        }
    }
}

/// Elsewhere: nothing to do.
#[cfg(not(target_os = "linux"))]
pub fn release_startup_code() {}

/// The `[start, end)` ranges in `smaps` (the text of `/proc/self/smaps`) that map `exe`
/// privately without write permission and have no anonymous page.
fn droppable_exe_mappings(smaps: &str, exe: &str) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    // The current mapping, while its fields are read: range, and whether it qualifies.
    let mut current: Option<(usize, usize, bool)> = None;
    let mut finish = |current: &mut Option<(usize, usize, bool)>| {
        if let Some((start, end, true)) = current.take() {
            found.push((start, end));
        }
    };
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else { continue };
        if let Some((start, end)) = first.split_once('-') {
            if let (Ok(start), Ok(end)) = (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            ) {
                finish(&mut current);
                let perms = fields.next().unwrap_or("");
                let path = fields.nth(3).unwrap_or("");
                let qualifies =
                    path == exe && perms.len() == 4 && !perms.contains('w') && perms.ends_with('p');
                current = Some((start, end, qualifies));
                continue;
            }
        }
        if first == "Anonymous:" && fields.next() != Some("0") {
            if let Some(current) = &mut current {
                current.2 = false;
            }
        }
    }
    finish(&mut current);
    found
}

/// The allocator's figures as `/memory` and `server.memory_*` report them: bytes in use
/// (`uordblks` + `hblkhd`), bytes taken from the system (`arena` + `hblkhd`) and free
/// bytes kept (`fordblks`), from glibc's `mallinfo2`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn allocator_bytes() -> (u64, u64, u64) {
    // SAFETY: mallinfo2 takes no arguments, returns a plain struct by value and only
    // reads the allocator's counters (under its own locks).
    #[allow(unsafe_code)]
    let info = unsafe { libc::mallinfo2() };
    let n = |v: usize| v as u64;
    (
        n(info.uordblks) + n(info.hblkhd),
        n(info.arena) + n(info.hblkhd),
        n(info.fordblks),
    )
}

/// Without glibc: no figures.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn allocator_bytes() -> (u64, u64, u64) {
    (0, 0, 0)
}

/// Resident set size from `/proc/self/status` (`VmRSS`, in kB; 0 where it cannot be
/// read).
pub fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kb| kb.saturating_mul(1024))
}

#[cfg(test)]
mod tests {
    use super::droppable_exe_mappings;

    #[test]
    fn only_read_only_private_unwritten_mappings_of_the_executable_are_dropped() {
        let smaps = "\
55d000000000-55d000001000 r--p 00000000 fd:01 42 /usr/bin/baton
Rss:                   4 kB
Anonymous:             0 kB
55d000001000-55d000009000 r-xp 00001000 fd:01 42 /usr/bin/baton
Anonymous:             0 kB
55d000009000-55d00000a000 r--p 00009000 fd:01 42 /usr/bin/baton
Anonymous:             4 kB
55d00000a000-55d00000b000 rw-p 0000a000 fd:01 42 /usr/bin/baton
Anonymous:             0 kB
7f0000000000-7f0000001000 r-xp 00000000 fd:01 7 /usr/lib/libc.so.6
Anonymous:             0 kB
";
        assert_eq!(
            droppable_exe_mappings(smaps, "/usr/bin/baton"),
            vec![
                (0x55d0_0000_0000, 0x55d0_0000_1000),
                (0x55d0_0000_1000, 0x55d0_0000_9000)
            ]
        );
    }
}
