//! Real client tools the NBD tests run (qemu-io, qemu-img, nbdinfo,
//! nbdcopy). A missing tool fails the test when `COWSNAP_REQUIRE_TOOLS=1`
//! (CI sets it, so a broken install cannot pass as skipped); otherwise the
//! test is skipped with a message that gets past the test harness.

use std::io::Write;
use std::process::Command;

/// True when `tool` runs. Otherwise panics under `COWSNAP_REQUIRE_TOOLS=1`,
/// or says loudly that the calling test is skipped and returns false.
pub fn have(tool: &str, package: &str) -> bool {
    let runs = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if runs {
        return true;
    }
    let missing = format!("{tool} is not installed (apt-get install -y {package})");
    if std::env::var("COWSNAP_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!("{missing}, and COWSNAP_REQUIRE_TOOLS=1 requires it");
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_string();
    // Written to the stderr handle, not with eprintln!: the harness
    // captures the print macros of passing tests, which would hide the skip.
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED {test}: {missing}; set COWSNAP_REQUIRE_TOOLS=1 to fail instead\n"
    );
    false
}
