//! Images: built locally when no registry is reachable.
