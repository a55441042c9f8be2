//! What the process sets up before any command runs: the allocator and its arena,
//! and the main thread's place in rayon's pool.

/// Burn allocates and frees a buffer for nearly every tensor operation, across the
/// training thread and the metric thread; mimalloc serves that pattern faster and
/// steadier than the system allocator (see the README's performance section).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Address space reserved for the allocator at start; only what is used takes memory.
const HEAP_RESERVE: usize = 2 << 30;

/// The build turns off mimalloc's own arena reservation (`.cargo/config.toml`: with
/// it, transparent huge pages kept 30 MB more resident). Without any arena, though,
/// mimalloc maps blocks of megabytes (a CNN's feature maps and im2col buffers) from
/// the OS and unmaps them on free, so every step faults each of their pages in again:
/// 40% of a CNN epoch. One arena reserved uncommitted, without large OS pages, keeps
/// those blocks for reuse and costs the default run 2 MB.
#[allow(unsafe_code)]
pub(crate) fn reserve_heap() {
    let mut arena = std::mem::MaybeUninit::<libmimalloc_sys::mi_arena_id_t>::uninit();
    // SAFETY: mi_reserve_os_memory_ex only maps address space for mimalloc's own
    // arenas and writes the new arena's id through a pointer to a value that lives
    // through the call; failing (an error code) changes nothing.
    let _ = unsafe {
        libmimalloc_sys::mi_reserve_os_memory_ex(
            HEAP_RESERVE,
            false,
            false,
            false,
            arena.as_mut_ptr(),
        )
    };
}

/// Makes the main thread worker 0 of rayon's global pool. The kernels' parallel loops
/// are called from the main thread; outside the pool it hands each whole loop to the
/// pool's threads and sleeps until they are done, three threads taking turns on the
/// cores. Inside, it runs its own half: a CNN epoch 4.06-4.47 s against 4.60-5.10 s
/// on two cores (bench/runs/2026-12-07-epyc-2core). Not for `serve`, whose requests
/// reach rayon from tokio's threads while the main thread waits outside the pool.
pub(crate) fn main_thread_joins_rayon_pool() {
    // Rayon's own default, read here because a count given to the builder overrides
    // `RAYON_NUM_THREADS`, and the count must be raised to two.
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|threads| threads.parse::<usize>().ok())
        .filter(|&threads| threads > 0)
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1);
    // At least one worker besides: jobs that other threads (the data loader's, a
    // second device's) hand to the pool must run while the main thread waits for
    // them outside it.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(2))
        .use_current_thread()
        .build_global();
}
