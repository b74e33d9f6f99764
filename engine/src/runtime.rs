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

/// Spawns a task on the current shard (must be called from a shard).
pub fn spawn_local<T: 'static>(fut: impl Future<Output = T> + 'static) -> LocalTask<T> {
    LocalTask(glommio::spawn_local(fut))
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

/// Wakes a sleeping shard from any thread: an eventfd that a local task keeps a read pending
/// on (through io_uring), turned into a local semaphore the shard's idle wait races with its
/// timer.
pub struct WakeSignal {
    fd: i32,
    sem: std::rc::Rc<glommio::sync::Semaphore>,
    _reader: glommio::Task<()>,
}

impl WakeSignal {
    /// Creates the eventfd and its reader task (call on the shard).
    pub fn new() -> io::Result<WakeSignal> {
        use std::os::fd::FromRawFd;
        // SAFETY: plain syscall; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor we own; the BufferedFile takes it over. It stays
        // open for the life of the shard (the reader task never closes it), so producers that
        // write to the number never hit a reused descriptor while the process runs.
        let file = unsafe { glommio::io::BufferedFile::from_raw_fd(fd) };
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
        Ok(WakeSignal {
            fd,
            sem,
            _reader: reader,
        })
    }

    /// The descriptor producers write to ([`crate::ring::Doorbell::use_eventfd`]).
    pub fn fd(&self) -> i32 {
        self.fd
    }

    /// Sleeps until woken or `timeout` passes.
    pub async fn wait(&self, timeout: Duration) {
        let woken = async {
            let _ = self.sem.acquire(1).await;
        };
        futures_lite::future::or(woken, glommio::timer::sleep(timeout)).await;
        // Collapse wake-ups that piled up while we were busy.
        while self.sem.try_acquire(1).unwrap_or(false) {}
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
