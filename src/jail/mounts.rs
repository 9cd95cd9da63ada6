//! Mount-namespace setup of the box.

/// Child side: stops mount events from propagating between the box and the
/// host, in both directions, before the box mounts anything of its own.
///
/// # Safety
/// Only async-signal-safe calls; call in a fresh mount namespace.
pub(crate) unsafe fn make_mounts_private() -> Result<(), i32> {
    // SAFETY: the path is a static NUL-terminated string and the other
    // pointers may be null for a propagation change.
    let ret = unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        // SAFETY: errno location is thread-local and always valid.
        Err(unsafe { *libc::__errno_location() })
    }
}
