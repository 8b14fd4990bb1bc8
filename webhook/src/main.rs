//! `tollgate`: Gatekeeper-compatible admission webhook and policy toolkit.

use std::process::ExitCode;

use clap::Parser;

// Under load, glibc's malloc and free (with its fastbin consolidation) took about 12% of the
// server's CPU: the request path around a decision (parsing, the review's values, the response)
// allocates and frees many small values. With mimalloc the same server answers 10-12% more
// reviews a second (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // mimalloc carves its heap out of large aligned reservations: with transparent huge pages,
    // every 2 MiB of them that is touched becomes resident whole (18 MiB of heap at idle, against
    // 3 MiB without). A process this small gains nothing from huge pages. Best effort: a kernel
    // without the prctl only costs memory.
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
    let cli = tollgate::cli::Cli::parse();
    match cli.run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::from(2)
        }
    }
}
