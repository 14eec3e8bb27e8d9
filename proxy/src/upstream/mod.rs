//! upstream (under construction).
