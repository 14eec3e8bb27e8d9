//! Cross-process integration test support (see tests/tests/).
