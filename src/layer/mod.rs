//! tower integration.
