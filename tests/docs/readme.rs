//! A newcomer starts from the README: it shows the dashboard's command next to the service's,
//! and lists every document under `docs/`.

use std::fs;

use kneo_testkit::workspace;

use super::doc_files;

#[test]
fn the_readme_shows_the_dashboard_beside_the_service_and_lists_every_doc() {
    let root = workspace::root();
    let readme = fs::read_to_string(root.join("README.md")).expect("README.md");
    let block = readme
        .split("```sh")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a first sh block");
    assert!(
        block.contains("-p kneo-server --bin kneo -- service serve")
            && block.contains("-p kneo-tui -- --url"),
        "the first command block starts the service and the dashboard:\n{block}"
    );
    let missing: Vec<String> = doc_files(root)
        .into_iter()
        .filter(|path| path.starts_with(root.join("docs")))
        .filter_map(|path| {
            let relative = path.strip_prefix(root).ok()?.display().to_string();
            (!readme.contains(&format!("`{relative}`"))).then_some(relative)
        })
        .collect();
    assert!(missing.is_empty(), "README.md does not list {missing:?}");
}
