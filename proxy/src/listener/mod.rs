//! listener (under construction).
