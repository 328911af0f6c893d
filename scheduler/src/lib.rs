//! The reminder and recurrence scheduler. Its service is built in a later issue; the crate exists
//! so that the workspace layout is final from the start.
