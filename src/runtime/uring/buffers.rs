//! The ring of provided buffers a worker's relay receives land in.

use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types;

use super::BUFFER_LEN;

/// The ring of provided buffers: page-aligned entries the kernel takes buffers from, and the
/// buffers themselves.
pub(super) struct Buffers {
    /// How many (a power of two).
    pub(super) count: u16,
    pub(super) entries: *mut types::BufRingEntry,
    layout: std::alloc::Layout,
    memory: Box<[u8]>,
    /// The tail as published to the kernel, plus the buffers given back since.
    tail: u16,
}

impl Buffers {
    pub(super) fn new(count: u16) -> io::Result<Self> {
        if !count.is_power_of_two() {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        let layout = std::alloc::Layout::from_size_align(
            usize::from(count) * std::mem::size_of::<types::BufRingEntry>(),
            4096,
        )
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // SAFETY: the layout has a non-zero size.
        let entries = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<types::BufRingEntry>();
        if entries.is_null() {
            return Err(io::Error::from(io::ErrorKind::OutOfMemory));
        }
        let mut buffers = Self {
            count,
            entries,
            layout,
            memory: vec![0u8; usize::from(count) * BUFFER_LEN].into_boxed_slice(),
            tail: 0,
        };
        for bid in 0..count {
            buffers.give_back(bid);
        }
        buffers.publish();
        Ok(buffers)
    }

    /// Queues buffer `bid` for the kernel (seen after [`publish`](Self::publish)).
    pub(super) fn give_back(&mut self, bid: u16) {
        let index = usize::from(self.tail & (self.count - 1));
        let addr = self.memory[usize::from(bid) * BUFFER_LEN..].as_ptr() as u64;
        // SAFETY: `index` is below `count`, the number of entries allocated.
        let entry = unsafe { &mut *self.entries.add(index) };
        entry.set_addr(addr);
        entry.set_len(BUFFER_LEN as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes the buffers given back visible to the kernel.
    pub(super) fn publish(&self) {
        // SAFETY: `entries` is the ring's first entry; its tail field is a u16 the kernel reads
        // atomically, written here with release order after the entries it covers.
        unsafe {
            let tail = types::BufRingEntry::tail(self.entries).cast_mut();
            (*tail.cast::<AtomicU16>()).store(self.tail, Ordering::Release);
        }
    }

    pub(super) fn get(&self, bid: u16) -> Option<&[u8]> {
        let start = usize::from(bid) * BUFFER_LEN;
        self.memory.get(start..start + BUFFER_LEN)
    }
}

impl Drop for Buffers {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; the ring that used it is gone (the
        // `Ring` drops its `IoUring` first).
        unsafe { std::alloc::dealloc(self.entries.cast(), self.layout) }
    }
}
