//! rt's memory allocator, for a process that lives a few milliseconds.
//!
//! An rt call allocates a few hundred kilobytes (the parsed config, clap's parser, paths and
//! strings) and exits. musl's allocator hands freed groups back to the kernel and maps new ones
//! as the call goes on: about 50 mmap and munmap calls and 70 page faults in one `rt run`, which
//! took 0.2 ms of its 3.8 ms on the build machine (README, Benchmark).
//!
//! This one never gives small blocks back to the kernel. A freed block goes on the free list of
//! its size class, and the next allocation of that class takes it again, so a loop that
//! allocates and frees (`rt events`, `rt run` waiting on its container) stays at its peak. New
//! blocks are cut from 1 MiB chunks, whose pages the kernel provides only when they are first
//! touched: a chunk costs one mmap and what is used of it. Blocks above 64 KiB, and blocks
//! aligned above 16 bytes (none of rt's types are), get a mapping of their own, unmapped when
//! freed.
//!
//! It is sound for threads (one spin lock guards the lists), although rt runs none. A clone3
//! child without CLONE_VM, like the container's init, gets its own copy of the lists with the
//! rest of the memory; none is made while the lock is held, since the allocator makes none.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::UnsafeCell;
use std::ptr::{self, null_mut};
use std::sync::atomic::{AtomicBool, Ordering};

/// Every small block is aligned to this much (and sized in multiples of it).
const MIN_ALIGN: usize = 16;
/// The largest size class; larger blocks are mapped on their own.
const LARGEST: usize = 64 << 10;
/// Size classes 16, 32, 48, 64, 96, 128, 192, ... 49152, 65536: powers of two and the midpoint
/// three quarters of the way up, so that a block wastes at most a third of itself.
const CLASSES: usize = 24;
const CHUNK: usize = 1 << 20;
const PAGE: usize = 4096;

/// The class of a small block of `size` bytes (1..=LARGEST).
fn class_of(size: usize) -> usize {
    if size <= MIN_ALIGN {
        return 0;
    }
    let pow = size.next_power_of_two();
    let k = pow.trailing_zeros() as usize;
    if pow >= 64 && size <= pow / 4 * 3 {
        2 * (k - 5)
    } else {
        2 * (k - 5) + 1
    }
}

fn class_size(class: usize) -> usize {
    match class {
        0 => MIN_ALIGN,
        c if c % 2 == 1 => 1 << ((c - 1) / 2 + 5),
        c => 3 << ((c - 2) / 2 + 4),
    }
}

fn is_small(layout: Layout) -> bool {
    layout.size() <= LARGEST && layout.align() <= MIN_ALIGN
}

fn page_round(n: usize) -> Option<usize> {
    n.checked_add(PAGE - 1).map(|n| n & !(PAGE - 1))
}

/// Fresh zeroed pages from the kernel, or null.
fn map(len: usize) -> *mut u8 {
    // SAFETY: a new private anonymous mapping; it touches no existing memory.
    let p = unsafe {
        libc::mmap(
            null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        null_mut()
    } else {
        p.cast()
    }
}

/// # Safety
/// `p..p+len` must be a whole mapping (or whole pages of one) that nothing uses any more.
unsafe fn unmap(p: *mut u8, len: usize) {
    // SAFETY: the caller's promise; munmap cannot fail on such a range.
    unsafe { libc::munmap(p.cast(), len) };
}

struct Lists {
    /// The first free block of each class; a free block's first word points to the next.
    free: [*mut u8; CLASSES],
    /// Where the next new block is cut, and the end of the chunk it is cut from. The memory
    /// from `cursor` to `end` has never been handed out, so it is still the kernel's zeroes.
    cursor: usize,
    end: usize,
}

pub struct Heap {
    locked: AtomicBool,
    lists: UnsafeCell<Lists>,
}

// SAFETY: `lists` is only reached through `lock()`, which lets one thread in at a time.
unsafe impl Sync for Heap {}

struct Guard<'a>(&'a Heap);

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.0.locked.store(false, Ordering::Release);
    }
}

impl Guard<'_> {
    fn lists(&mut self) -> &mut Lists {
        // SAFETY: the guard holds the lock, so this is the only reference to the lists.
        unsafe { &mut *self.0.lists.get() }
    }
}

impl Default for Heap {
    fn default() -> Self {
        Self::new()
    }
}

impl Heap {
    pub const fn new() -> Self {
        Heap {
            locked: AtomicBool::new(false),
            lists: UnsafeCell::new(Lists {
                free: [null_mut(); CLASSES],
                cursor: 0,
                end: 0,
            }),
        }
    }

    fn lock(&self) -> Guard<'_> {
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
        Guard(self)
    }

    /// A small block of `class`, and whether it is fresh (still zero).
    fn take(&self, class: usize) -> (*mut u8, bool) {
        let mut guard = self.lock();
        let l = guard.lists();
        let head = l.free[class];
        if !head.is_null() {
            // SAFETY: a free block is at least 16 bytes, 16-aligned, and its first word was
            // written by `give_back` (or is the zero of a fresh block, ending the list).
            l.free[class] = unsafe { head.cast::<*mut u8>().read() };
            return (head, false);
        }
        let size = class_size(class);
        if l.end - l.cursor < size {
            // What is left of the old chunk is dropped: its untouched pages cost nothing.
            let chunk = map(CHUNK);
            if chunk.is_null() {
                return (null_mut(), false);
            }
            l.cursor = chunk as usize;
            l.end = l.cursor + CHUNK;
        }
        let p = l.cursor as *mut u8;
        l.cursor += size;
        (p, true)
    }

    /// # Safety
    /// `p` is a small block of `class` that nobody uses any more.
    unsafe fn give_back(&self, p: *mut u8, class: usize) {
        let mut guard = self.lock();
        let l = guard.lists();
        // SAFETY: the block is ours again and holds at least one aligned pointer.
        unsafe { p.cast::<*mut u8>().write(l.free[class]) };
        l.free[class] = p;
    }

    /// Grows the block at `p` in place if it is the last one cut from the current chunk and the
    /// chunk has room: the common case of one string or vector being built up.
    fn grow_at_end(&self, p: *mut u8, old: usize, new: usize) -> bool {
        let mut guard = self.lock();
        let l = guard.lists();
        let start = p as usize;
        if start + class_size(old) == l.cursor && start + class_size(new) <= l.end {
            l.cursor = start + class_size(new);
            return true;
        }
        false
    }

    fn large(layout: Layout) -> *mut u8 {
        let Some(len) = page_round(layout.size()) else {
            return null_mut();
        };
        if layout.align() <= PAGE {
            return map(len);
        }
        // Map enough to find an aligned start in it, then give back the ends.
        let Some(total) = len.checked_add(layout.align()) else {
            return null_mut();
        };
        let p = map(total);
        if p.is_null() {
            return p;
        }
        let start = (p as usize + layout.align() - 1) & !(layout.align() - 1);
        let head = start - p as usize;
        // SAFETY: the head and the tail are whole pages of the mapping just made that the
        // block does not cover (both lengths are multiples of the page size).
        unsafe {
            if head > 0 {
                unmap(p, head);
            }
            if total - head - len > 0 {
                unmap((start + len) as *mut u8, total - head - len);
            }
        }
        start as *mut u8
    }
}

// SAFETY: blocks are disjoint (each is handed out once until it is freed), small ones are
// 16-aligned and at least their layout's size, large ones are mappings of their own aligned as
// asked; `dealloc` and `realloc` find a block's class again from the layout it was made with,
// which the GlobalAlloc contract requires callers to pass back.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !is_small(layout) {
            return Self::large(layout);
        }
        self.take(class_of(layout.size().max(1))).0
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !is_small(layout) {
            return Self::large(layout); // the kernel's pages are zero
        }
        let (p, fresh) = self.take(class_of(layout.size().max(1)));
        if !p.is_null() && !fresh {
            // SAFETY: the block is ours and at least layout.size() long.
            unsafe { ptr::write_bytes(p, 0, layout.size()) };
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        if is_small(layout) {
            // SAFETY: the caller frees a block it had from us with this layout.
            unsafe { self.give_back(p, class_of(layout.size().max(1))) };
        } else if let Some(len) = page_round(layout.size()) {
            // SAFETY: a large block is a mapping of its own, `len` long.
            unsafe { unmap(p, len) };
        }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the contract makes the new size, with the same alignment, a valid layout.
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (is_small(layout), is_small(new)) {
            (true, true) => {
                let (old_class, new_class) =
                    (class_of(layout.size().max(1)), class_of(new_size.max(1)));
                if old_class == new_class
                    || (new_class > old_class && self.grow_at_end(p, old_class, new_class))
                {
                    return p;
                }
            }
            (false, false) if layout.align() <= PAGE => {
                let (Some(old_len), Some(new_len)) =
                    (page_round(layout.size()), page_round(new_size))
                else {
                    return null_mut();
                };
                if old_len == new_len {
                    return p;
                }
                // SAFETY: p is a mapping of old_len bytes of ours; the kernel moves or resizes
                // it whole, and on failure leaves it as it was.
                let q = unsafe { libc::mremap(p.cast(), old_len, new_len, libc::MREMAP_MAYMOVE) };
                return if q == libc::MAP_FAILED {
                    null_mut()
                } else {
                    q.cast()
                };
            }
            _ => {}
        }
        // SAFETY: the GlobalAlloc contract for the calls below is the one of this call.
        unsafe {
            let q = self.alloc(new);
            if !q.is_null() {
                ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
                self.dealloc(p, layout);
            }
            q
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_size_gets_the_smallest_class_that_holds_it() {
        for size in 1..=LARGEST {
            let c = class_of(size);
            assert!(c < CLASSES, "size {size}");
            assert!(
                class_size(c) >= size,
                "size {size} in class {c} of {}",
                class_size(c)
            );
            assert!(
                c == 0 || class_size(c - 1) < size,
                "size {size} fits class {}",
                c - 1
            );
            assert_eq!(class_size(c) % MIN_ALIGN, 0);
        }
        assert_eq!(class_size(CLASSES - 1), LARGEST);
    }

    #[test]
    fn blocks_are_disjoint_aligned_and_reused_after_free() {
        let heap = Heap::new();
        let sizes = [
            1, 8, 16, 17, 40, 100, 1000, 4096, 5000, 65536, 65537, 300_000,
        ];
        let mut blocks = Vec::new();
        for (n, &size) in sizes.iter().cycle().take(600).enumerate() {
            let layout = Layout::from_size_align(size, 8).unwrap();
            // SAFETY: a non-zero layout; the block is freed below with the same layout.
            let p = unsafe { heap.alloc(layout) };
            assert!(!p.is_null());
            assert_eq!(p as usize % MIN_ALIGN, 0);
            // SAFETY: the block is ours and `size` long.
            unsafe { ptr::write_bytes(p, n as u8, size) };
            blocks.push((p, layout, n as u8));
        }
        for &(p, layout, fill) in &blocks {
            // SAFETY: still allocated and filled above; no other block overlapped it.
            let s = unsafe { std::slice::from_raw_parts(p, layout.size()) };
            assert!(
                s.iter().all(|&b| b == fill),
                "block of {} overwritten",
                layout.size()
            );
        }
        // SAFETY: freeing blocks made above with their layouts.
        unsafe {
            for &(p, layout, _) in &blocks {
                heap.dealloc(p, layout);
            }
            // The last 16-byte block freed (size 16, the third of the last round) comes back
            // first, before any other.
            let layout = Layout::from_size_align(16, 8).unwrap();
            let last = blocks.len() - sizes.len() + 2;
            assert_eq!(heap.alloc(layout), blocks[last].0);
        }
    }

    #[test]
    fn zeroed_blocks_are_zero_even_when_reused() {
        let heap = Heap::new();
        let layout = Layout::from_size_align(200, 16).unwrap();
        // SAFETY: blocks made and freed with the same layout; reads within their size.
        unsafe {
            let p = heap.alloc(layout);
            ptr::write_bytes(p, 0xaa, 200);
            heap.dealloc(p, layout);
            let q = heap.alloc_zeroed(layout);
            assert_eq!(p, q, "the freed block is handed out again");
            assert!(std::slice::from_raw_parts(q, 200).iter().all(|&b| b == 0));
        }
    }

    #[test]
    fn realloc_keeps_the_contents_across_classes_and_mappings() {
        let heap = Heap::new();
        let mut layout = Layout::from_size_align(10, 8).unwrap();
        // SAFETY: each realloc passes the layout its block currently has.
        unsafe {
            let mut p = heap.alloc(layout);
            ptr::write_bytes(p, 7, 10);
            for size in [20, 100, 3000, 70_000, 500_000, 90_000, 50, 12] {
                p = heap.realloc(p, layout, size);
                assert!(!p.is_null());
                let kept = layout.size().min(size);
                assert!(
                    std::slice::from_raw_parts(p, kept).iter().all(|&b| b == 7),
                    "{size}"
                );
                ptr::write_bytes(p, 7, size);
                layout = Layout::from_size_align(size, 8).unwrap();
            }
            heap.dealloc(p, layout);
        }
    }

    #[test]
    fn the_last_block_grows_in_place() {
        let heap = Heap::new();
        // SAFETY: as above.
        unsafe {
            let a = heap.alloc(Layout::from_size_align(32, 8).unwrap());
            let b = heap.realloc(a, Layout::from_size_align(32, 8).unwrap(), 4000);
            assert_eq!(a, b);
            let c = heap.alloc(Layout::from_size_align(32, 8).unwrap());
            assert!(
                c as usize >= b as usize + 4000,
                "the grown block's room is not handed out again"
            );
        }
    }

    #[test]
    fn alignment_above_sixteen_is_honoured() {
        let heap = Heap::new();
        for align in [32, 64, 4096, 8192, 1 << 16] {
            let layout = Layout::from_size_align(100, align).unwrap();
            // SAFETY: made and freed with the same layout.
            unsafe {
                let p = heap.alloc(layout);
                assert_eq!(p as usize % align, 0);
                ptr::write_bytes(p, 1, 100);
                heap.dealloc(p, layout);
            }
        }
    }

    #[test]
    fn threads_share_it_safely() {
        static HEAP: Heap = Heap::new();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                std::thread::spawn(move || {
                    for i in 0..5000usize {
                        let layout = Layout::from_size_align(1 + (i * 37 + t) % 3000, 8).unwrap();
                        // SAFETY: made, filled, checked and freed by this thread alone.
                        unsafe {
                            let p = HEAP.alloc(layout);
                            ptr::write_bytes(p, t as u8, layout.size());
                            std::thread::yield_now();
                            assert!(
                                std::slice::from_raw_parts(p, layout.size())
                                    .iter()
                                    .all(|&b| b == t as u8)
                            );
                            HEAP.dealloc(p, layout);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
}
