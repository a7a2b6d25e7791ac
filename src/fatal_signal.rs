//! A line on stderr when the process is killed by a fault or the CPU-time limit, instead of an
//! exit with no word: a CI run once saw `tlearn extract` end with empty stdout and stderr.
//!
//! For SIGSEGV, SIGBUS, SIGILL, SIGFPE (faults) and SIGXCPU (`ulimit -t`), the handler writes
//! which signal it was (async-signal-safe `write(2)` of a fixed string) and puts back the action
//! that was there before: Rust's own stack-overflow handler for SIGSEGV and SIGBUS, else the
//! default. A fault the CPU raised then happens again as the handler returns and gets that
//! action (so a stack overflow is still reported as one); a signal sent by another process (or
//! the kernel's SIGXCPU) is raised again with the default action. The exit status stays the signal's: callers see the same death, with a reason.
//! SIGKILL (the out-of-memory killer, a timeout) cannot be caught; its exit status says so.
//!
//! SIGXFSZ (a file past `ulimit -f`) is ignored instead, so the write fails with `EFBIG` and
//! the usual error names the file, as a full disk does.

use std::sync::OnceLock;

const SIGNALS: [(libc::c_int, &str); 5] = [
    (
        libc::SIGSEGV,
        "tlearn: killed by SIGSEGV (invalid memory access): a bug; please report it with the command line\n",
    ),
    (
        libc::SIGBUS,
        "tlearn: killed by SIGBUS (bus error): a bug, or a file in use was truncated\n",
    ),
    (
        libc::SIGILL,
        "tlearn: killed by SIGILL (an instruction this CPU lacks): a bug; please report it with `lscpu`\n",
    ),
    (
        libc::SIGFPE,
        "tlearn: killed by SIGFPE (arithmetic fault): a bug; please report it\n",
    ),
    (
        libc::SIGXCPU,
        "tlearn: killed by SIGXCPU: the CPU-time limit (`ulimit -t`) ran out\n",
    ),
];

/// The actions in place before [`install`], in the order of [`SIGNALS`].
static PREVIOUS: OnceLock<[libc::sigaction; SIGNALS.len()]> = OnceLock::new();

extern "C" fn on_fatal(sig: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    let Some(i) = SIGNALS.iter().position(|(s, _)| *s == sig) else {
        return;
    };
    let msg = SIGNALS[i].1;
    // SAFETY: write(2), sigaction(2) and raise(3) are async-signal-safe; `msg` is static,
    // PREVIOUS was filled before any handler was installed, `info` is the kernel's.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
        // si_code > 0: the CPU's own fault, which recurs on return and meets the previous
        // action. Otherwise the signal was sent: the default action, and send it again.
        if sig != libc::SIGXCPU && !info.is_null() && (*info).si_code > 0 {
            if let Some(prev) = PREVIOUS.get() {
                libc::sigaction(sig, &prev[i], std::ptr::null_mut());
            }
        } else {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
    }
}

/// Installs the handler for every signal of [`SIGNALS`] (on the alternate signal stack Rust
/// gives its threads, so that a stack overflow still reaches Rust's own report) and ignores
/// SIGXFSZ.
pub fn install() {
    // SAFETY: plain sigaction(2) calls on zeroed, then filled, structures.
    unsafe {
        let mut previous: [libc::sigaction; SIGNALS.len()] = std::mem::zeroed();
        for (i, (sig, _)) in SIGNALS.iter().enumerate() {
            libc::sigaction(*sig, std::ptr::null(), &mut previous[i]);
        }
        if PREVIOUS.set(previous).is_err() {
            return;
        }
        for (sig, _) in SIGNALS {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_fatal
                as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void)
                as usize;
            action.sa_flags = libc::SA_ONSTACK | libc::SA_SIGINFO;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}
