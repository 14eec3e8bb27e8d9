//! The shared-memory stats region (issue 4). Placeholder crate: not implemented yet.
