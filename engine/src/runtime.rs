//! The shard runtime: executor threads pinned to cores, their timers and their file I/O.
//!
//! This is the only module that names glommio. A shard is a glommio `LocalExecutor` pinned to
//! one core; file reads go through glommio's buffered io_uring file. Everything above this
//! module sees [`spawn_shard`], [`spawn_local`], [`sleep`], [`yield_now`] and [`ShardFile`],
//! so the executor could be replaced without touching sources, sinks or the pipeline.

use std::future::Future;
use std::io;
use std::path::Path;
use std::time::Duration;

/// io_uring buffer memory registered per shard. glommio locks this memory; keeping it small
/// lets Sluice start under the common 8 MiB `RLIMIT_MEMLOCK` of non-root services.
pub const SHARD_IO_MEMORY: usize = 512 * 1024;
/// Depth of each of a shard's io_uring rings.
pub const SHARD_RING_DEPTH: usize = 64;

/// Where a shard runs.
#[derive(Debug, Clone)]
pub struct ShardSpec {
    pub index: usize,
    /// The core to pin to; `None` leaves the thread unpinned.
    pub core: Option<usize>,
}

/// A running shard thread.
pub struct ShardHandle {
    inner: std::thread::JoinHandle<io::Result<()>>,
}

impl ShardHandle {
    /// Waits for the shard's main future to finish.
    pub fn join(self) -> io::Result<()> {
        self.inner
            .join()
            .map_err(|_| io::Error::other("shard thread panicked"))?
    }

    /// True once the thread ended (finished, failed to start, or panicked).
    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }
}

/// Starts a shard thread; `make` builds the shard's main future on that thread. An executor
/// that cannot start there (e.g. io_uring refused) ends the thread with the error, which
/// [`ShardHandle::join`] returns.
pub fn spawn_shard<G, F>(spec: ShardSpec, make: G) -> io::Result<ShardHandle>
where
    G: FnOnce() -> F + Send + 'static,
    F: Future<Output = ()> + 'static,
{
    let placement = match spec.core {
        Some(c) => glommio::Placement::Fixed(c),
        None => glommio::Placement::Unbound,
    };
    let name = format!("sluice-shard-{}", spec.index);
    let index = spec.index;
    let inner = std::thread::Builder::new().name(name.clone()).spawn(move || {
        let ex = glommio::LocalExecutorBuilder::new(placement)
            .name(&name)
            .io_memory(SHARD_IO_MEMORY)
            .ring_depth(SHARD_RING_DEPTH)
            .preempt_timer(Duration::from_millis(10))
            .make()
            .map_err(|e| {
                let hint = if e.to_string().contains("MemLock") {
                    " (each shard locks about 1 MiB for io_uring: raise `ulimit -l` or systemd's LimitMEMLOCK)"
                } else {
                    ""
                };
                io::Error::other(format!("cannot start shard {index}: {e}{hint}"))
            })?;
        ex.run(make());
        Ok(())
    })?;
    Ok(ShardHandle { inner })
}

/// A task running on the current shard.
pub struct LocalTask<T>(glommio::Task<T>);

impl<T> LocalTask<T> {
    /// Waits for the task to finish.
    pub async fn join(self) -> T {
        self.0.await
    }

    /// Lets the task run on by itself (dropping a `LocalTask` cancels it).
    pub fn detach(self) {
        drop(self.0.detach());
    }
}

thread_local! {
    /// Tasks started with [`spawn_local`] on this shard that have not ended (finished or
    /// cancelled). While there are none, [`WakeSignal::wait`] may block the thread.
    static LIVE_TASKS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Counts a task in [`LIVE_TASKS`] for as long as its future exists.
struct LiveTask;

impl LiveTask {
    fn new() -> LiveTask {
        LIVE_TASKS.with(|n| n.set(n.get() + 1));
        LiveTask
    }
}

impl Drop for LiveTask {
    fn drop(&mut self) {
        LIVE_TASKS.with(|n| n.set(n.get().saturating_sub(1)));
    }
}

/// Spawns a task on the current shard (must be called from a shard).
pub fn spawn_local<T: 'static>(fut: impl Future<Output = T> + 'static) -> LocalTask<T> {
    let live = LiveTask::new();
    LocalTask(glommio::spawn_local(async move {
        let _live = live;
        fut.await
    }))
}

/// Sleeps on the shard's timer (io_uring timeout), letting other tasks run.
pub async fn sleep(d: Duration) {
    glommio::timer::sleep(d).await
}

/// Lets the shard's other tasks run.
pub async fn yield_now() {
    glommio::executor().yield_now().await
}

/// Yields only if the shard has run this task for too long.
pub async fn yield_if_needed() {
    glommio::yield_if_needed().await
}

/// Wakes a sleeping shard from any thread: an eventfd that producers write
/// ([`crate::ring::Doorbell::use_eventfd`]).
///
/// How the shard sleeps on it depends on what else runs there. A shard whose only task is its
/// main loop (no file source, no disk buffer: nothing that waits on io_uring or a timer)
/// blocks its thread in `poll(2)` on the eventfd: one sleep and one wake-up in the kernel.
/// Parking the executor instead costs several io_uring submissions and a `membarrier` (an
/// interrupt to every core running one of the process's threads) per sleep, which at a
/// steady rate of one batch per millisecond was a large part of a shard's CPU. As soon as a
/// shard has other tasks, a reader task keeps an io_uring read pending on the eventfd and
/// the wait races it with the shard's timer, so those tasks run while the loop sleeps; the
/// shard stays in that mode (the two are never mixed on one descriptor).
pub struct WakeSignal {
    fd: i32,
    uring: std::cell::OnceCell<UringWake>,
}

/// The executor-friendly wait: the eventfd read through io_uring, turned into a semaphore.
struct UringWake {
    sem: std::rc::Rc<glommio::sync::Semaphore>,
    _reader: glommio::Task<()>,
}

impl WakeSignal {
    /// Creates the eventfd (call on the shard).
    pub fn new() -> io::Result<WakeSignal> {
        // SAFETY: plain syscall; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(WakeSignal {
            fd,
            uring: std::cell::OnceCell::new(),
        })
    }

    /// The descriptor producers write to ([`crate::ring::Doorbell::use_eventfd`]).
    pub fn fd(&self) -> i32 {
        self.fd
    }

    /// True once the wait goes through the executor (the shard has had other tasks).
    pub fn waits_on_executor(&self) -> bool {
        self.uring.get().is_some()
    }

    /// Sleeps until woken or `timeout` passes.
    pub async fn wait(&self, timeout: Duration) {
        if self.uring.get().is_none() && LIVE_TASKS.with(|n| n.get()) == 0 {
            self.block(timeout);
            return;
        }
        let uring = self.uring.get_or_init(|| self.start_reader());
        let woken = async {
            let _ = uring.sem.acquire(1).await;
        };
        futures_lite::future::or(woken, glommio::timer::sleep(timeout)).await;
        // Collapse wake-ups that piled up while we were busy.
        while uring.sem.try_acquire(1).unwrap_or(false) {}
    }

    /// Blocks the thread until the eventfd is readable or `timeout` passes, then resets it.
    fn block(&self, timeout: Duration) {
        let mut pfd = libc::pollfd {
            fd: self.fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: `pfd` is one live pollfd; the result is checked.
        let ready = unsafe { libc::poll(&mut pfd, 1, ms) };
        if ready > 0 && pfd.revents & libc::POLLIN != 0 {
            let mut v = 0u64;
            // SAFETY: reads 8 bytes into a live u64. Nothing else reads this descriptor in
            // this mode, so a readable eventfd returns at once.
            unsafe { libc::read(self.fd, &mut v as *mut u64 as *mut libc::c_void, 8) };
        }
    }

    /// Starts the reader task that turns eventfd reads (through io_uring) into semaphore
    /// signals.
    fn start_reader(&self) -> UringWake {
        use std::os::fd::FromRawFd;
        // SAFETY: `fd` is our descriptor; the BufferedFile takes it over. It stays open for
        // the life of the shard (the reader task never closes it), so producers that write
        // to the number never hit a reused descriptor while the process runs.
        let file = unsafe { glommio::io::BufferedFile::from_raw_fd(self.fd) };
        let sem = std::rc::Rc::new(glommio::sync::Semaphore::new(0));
        let s2 = sem.clone();
        let reader = glommio::spawn_local(async move {
            loop {
                match file.read_at(0, 8).await {
                    Ok(r) if r.len() == 8 => s2.signal(1),
                    _ => glommio::timer::sleep(Duration::from_millis(1)).await,
                }
            }
        });
        UringWake {
            sem,
            _reader: reader,
        }
    }
}

/// The cores this process may run on.
pub fn online_cores() -> Vec<usize> {
    match glommio::CpuSet::online() {
        Ok(set) => {
            let mut v: Vec<usize> = set.iter().map(|l| l.cpu).collect();
            v.sort_unstable();
            v.dedup();
            v
        }
        Err(_) => (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect(),
    }
}

/// A file read through the shard's io_uring (buffered, so the page cache serves it).
pub struct ShardFile {
    inner: glommio::io::BufferedFile,
}

impl ShardFile {
    pub async fn open(path: &Path) -> io::Result<ShardFile> {
        let inner = glommio::io::BufferedFile::open(path)
            .await
            .map_err(io::Error::from)?;
        Ok(ShardFile { inner })
    }

    /// Reads up to `len` bytes at `pos` and appends them to `out`. Returns the bytes read
    /// (0 at end of file).
    pub async fn read_at_into(
        &self,
        pos: u64,
        len: usize,
        out: &mut bytes::BytesMut,
    ) -> io::Result<usize> {
        let r = self
            .inner
            .read_at(pos, len)
            .await
            .map_err(io::Error::from)?;
        out.extend_from_slice(&r);
        Ok(r.len())
    }

    /// `(device, inode, size)` of the open file (fstat).
    pub fn stat(&self) -> io::Result<(u64, u64, u64)> {
        use std::os::fd::AsRawFd;
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: fstat writes a full `stat` struct into the pointer on success; we read it
        // only after checking the return value.
        let rc = unsafe { libc::fstat(self.inner.as_raw_fd(), st.as_mut_ptr()) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fstat returned 0, so the struct is initialized.
        let st = unsafe { st.assume_init() };
        Ok((st.st_dev, st.st_ino, st.st_size as u64))
    }

    pub async fn size(&self) -> io::Result<u64> {
        self.inner.file_size().await.map_err(io::Error::from)
    }

    pub async fn close(self) -> io::Result<()> {
        self.inner.close().await.map_err(io::Error::from)
    }
}

/// The WAL writer's file operations over the shard's io_uring (glommio's buffered file:
/// writes land in the page cache, `fdatasync` and `fallocate` are io_uring operations).
#[derive(Debug, Default, Clone, Copy)]
pub struct ShardWalIo;

/// A WAL segment opened on a shard.
pub struct ShardWalFile {
    inner: glommio::io::BufferedFile,
}

impl crate::wal::WalIo for ShardWalIo {
    type File = ShardWalFile;

    async fn create(&self, path: &Path) -> io::Result<ShardWalFile> {
        let inner = glommio::io::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .buffered_open(path)
            .await
            .map_err(io::Error::from)?;
        Ok(ShardWalFile { inner })
    }

    async fn open(&self, path: &Path) -> io::Result<ShardWalFile> {
        let inner = glommio::io::OpenOptions::new()
            .read(true)
            .write(true)
            .buffered_open(path)
            .await
            .map_err(io::Error::from)?;
        Ok(ShardWalFile { inner })
    }

    async fn write_at(&self, file: &ShardWalFile, buf: Vec<u8>, pos: u64) -> io::Result<usize> {
        file.inner.write_at(buf, pos).await.map_err(io::Error::from)
    }

    async fn fdatasync(&self, file: &ShardWalFile) -> io::Result<()> {
        file.inner.fdatasync().await.map_err(io::Error::from)
    }

    async fn pre_allocate(&self, file: &ShardWalFile, len: u64) -> io::Result<()> {
        match file.inner.pre_allocate(len, false).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let e = io::Error::from(e);
                match e.raw_os_error() {
                    // No fallocate here: extending the file reads as zeros all the same.
                    Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => {
                        file.inner.truncate(len).await.map_err(io::Error::from)
                    }
                    _ => Err(e),
                }
            }
        }
    }

    async fn reuse(&self, from: &Path, to: &Path) -> io::Result<ShardWalFile> {
        glommio::io::rename(from, to)
            .await
            .map_err(io::Error::from)?;
        self.open(to).await
    }

    async fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let d = glommio::io::Directory::open(dir)
            .await
            .map_err(io::Error::from)?;
        d.sync().await.map_err(io::Error::from)?;
        d.close().await.map_err(io::Error::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Instant;

    /// An unpinned shard running `make()`'s future.
    fn test_shard<G, F>(make: G) -> ShardHandle
    where
        G: FnOnce() -> F + Send + 'static,
        F: Future<Output = ()> + 'static,
    {
        spawn_shard(
            ShardSpec {
                index: 0,
                core: None,
            },
            make,
        )
        .unwrap()
    }

    fn ring(fd: i32) {
        let one = 1u64;
        // SAFETY: writes 8 bytes from a live u64 to an eventfd that the shard keeps open.
        unsafe { libc::write(fd, &one as *const u64 as *const libc::c_void, 8) };
    }

    /// A shard with nothing but its main loop sleeps in poll(2) on the eventfd; a write from
    /// another thread ends the wait (long before its 30 s timeout), and so does a write made
    /// before the wait started.
    #[test]
    fn a_shard_without_tasks_blocks_on_its_eventfd_and_a_write_wakes_it() {
        let (fd_tx, fd_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel();
        let shard = test_shard(move || async move {
            let wake = WakeSignal::new().unwrap();
            fd_tx.send(wake.fd()).unwrap();
            for _ in 0..2 {
                let t = Instant::now();
                wake.wait(Duration::from_secs(30)).await;
                done_tx
                    .send((t.elapsed(), wake.waits_on_executor()))
                    .unwrap();
            }
        });
        let fd = fd_rx.recv().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        ring(fd);
        let (took, on_executor) = done_rx.recv().unwrap();
        assert!(
            took < Duration::from_secs(20),
            "woken by the write, took {took:?}"
        );
        assert!(!on_executor, "no other task: the thread blocks in poll");
        // A write that lands between two waits is not lost.
        ring(fd);
        let (took, _) = done_rx.recv().unwrap();
        assert!(took < Duration::from_secs(20), "took {took:?}");
        shard.join().unwrap();
    }

    /// With another task on the shard, the wait goes through the executor, so that task
    /// keeps running while the main loop sleeps, and a write still wakes the loop.
    #[test]
    fn a_shard_with_another_task_sleeps_through_the_executor() {
        let (fd_tx, fd_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel();
        let shard = test_shard(move || async move {
            let ticks = std::rc::Rc::new(std::cell::Cell::new(0u32));
            let t2 = ticks.clone();
            // Yields rather than sleeping on a timer, so the test does not depend on
            // glommio's timers (which some VMs lose, see dataflow/src/topology.rs).
            let task = spawn_local(async move {
                loop {
                    yield_now().await;
                    t2.set(t2.get() + 1);
                }
            });
            let wake = WakeSignal::new().unwrap();
            fd_tx.send(wake.fd()).unwrap();
            let t = Instant::now();
            wake.wait(Duration::from_secs(30)).await;
            done_tx
                .send((t.elapsed(), wake.waits_on_executor(), ticks.get()))
                .unwrap();
            drop(task);
        });
        let fd = fd_rx.recv().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        ring(fd);
        let (took, on_executor, ticks) = done_rx.recv().unwrap();
        assert!(
            took < Duration::from_secs(20),
            "woken by the write, took {took:?}"
        );
        assert!(on_executor);
        assert!(ticks > 0, "the other task ran while the loop slept");
        shard.join().unwrap();
    }
}
