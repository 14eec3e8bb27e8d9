//! The frame reader (in progress).
