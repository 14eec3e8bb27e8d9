//! admin (under construction).
