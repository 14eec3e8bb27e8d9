//! access_log (under construction).
