//! The headless browser the drawing tests use: a screenshot is a PNG, and ChromeDriver
//! starts and answers.

use discoverable_testkit::browser::Browser;

#[test]
fn screenshot_writes_a_png() {
    let Some(browser) = Browser::require("screenshot_writes_a_png") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("discoverable-shot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("page.html");
    std::fs::write(&page, "<body style='background:#c00'><h1>hello</h1></body>").unwrap();
    let png = dir.join("page.png");
    browser
        .screenshot(&format!("file://{}", page.display()), &png, 320, 200)
        .unwrap();
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    // The IHDR chunk carries the size the window was given.
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((width, height), (320, 200));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn chromedriver_starts() {
    let Some(browser) = Browser::require_driver("chromedriver_starts") else {
        return;
    };
    let driver = browser.driver().unwrap();
    assert!(driver.url().starts_with("http://127.0.0.1:"));
    let caps = driver.capabilities(360, 640);
    assert_eq!(caps["goog:chromeOptions"]["args"][0], "--headless");
}
