//! `kneo-tui`: the on-call terminal dashboard (see the `kneo_tui` crate for the module map).

fn main() -> std::process::ExitCode {
    kneo_tui::run::main()
}
