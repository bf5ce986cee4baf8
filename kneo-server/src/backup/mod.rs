//! Backup, verification and restore of all service state (in progress).
