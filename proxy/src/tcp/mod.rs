//! tcp (under construction).
