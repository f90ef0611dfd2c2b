use super::*;

/// An instance through its whole life: up at `up`, SIGTERM at `down`, grace 500 ms.
fn ours(name: &str, up: f64, down: f64) -> Lane {
    Lane::new(name)
        .event(up, EventKind::Bound)
        .event(up + 0.4, EventKind::Registered)
        .event(up + 0.9, EventKind::Passing)
        .event(down, EventKind::Health503)
        .event(down + 1.2, EventKind::Deregistered)
        .event(down + 501.3, EventKind::ListenerClosed)
        .event(down + 501.8, EventKind::Drained)
        .event(down + 502.0, EventKind::Exited)
}

/// A seed-recipe instance: registered before it listens, passing at its first check, never
/// deregistered: critical only after it exited.
fn seed(name: &str, up: f64, down: f64) -> Lane {
    Lane::new(name)
        .event(up, EventKind::Registered)
        .event(up + 2.0, EventKind::Bound)
        .event(up + 40.0, EventKind::Passing)
        .event(down, EventKind::Sigterm)
        .event(down + 0.5, EventKind::Exited)
        .event(down + 900.0, EventKind::Critical)
}

fn section(name: &str, lanes: Vec<Lane>, requests: impl Fn(f64) -> bool, until: f64) -> Section {
    let mut s = Section::new(name);
    s.lanes = lanes;
    let mut t = 0.0;
    while t < until {
        s.requests.record(t, requests(t));
        t += 0.37;
    }
    let end = s.end_ms();
    for lane in &mut s.lanes {
        lane.derive_bands(end);
    }
    s
}

fn synthetic() -> Run {
    let ours = section(
        "ours: discoverable",
        vec![
            ours("monolith", 0.0, 2400.0),
            ours("v2 a", 1.0, 900.0),
            ours("v2 b", 700.0, 2401.0),
        ],
        |_| true,
        2300.0,
    );
    let mut baseline = section(
        "the seed's Go recipe",
        vec![seed("seed 1", 0.0, 1000.0), seed("seed 2", 3.0, 2500.0)],
        |t| !(1000.0..1900.0).contains(&t) || (t * 100.0) as u64 % 2 == 0,
        2300.0,
    );
    baseline.baseline = true;
    Run {
        title: "Rolling restart — synthetic".into(),
        facts: vec![
            "agent: dev agent 1.14.11".into(),
            "router: in-process prefix router".into(),
            "3 instances of ours, 2 of the seed's recipe".into(),
        ],
        sections: vec![ours, baseline],
        axis_label: None,
    }
}

#[test]
fn one_lane_per_instance_in_each_section() {
    let run = synthetic();
    let l = layout(&run);
    assert_eq!(l.sections.len(), 2);
    for (s, laid) in run.sections.iter().zip(&l.sections) {
        let names: Vec<&str> = laid.lanes.iter().map(|l| l.name.text.as_str()).collect();
        let expected: Vec<&str> = s.lanes.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, expected);
        for pair in laid.lanes.windows(2) {
            assert!(pair[0].rect.bottom() <= pair[1].rect.y, "lanes overlap");
        }
    }
}

#[test]
fn labels_of_a_lane_never_overlap() {
    let l = layout(&synthetic());
    for lane in l.sections.iter().flat_map(|s| &s.lanes) {
        let labels = lane.labels();
        // The name, every event (bound, registered and passing within a millisecond need
        // rows of their own) and at least one band.
        let events = lane.events.len();
        assert!(events >= 6, "{}: {events} events", lane.name.text);
        assert!(
            labels.len() > events + 1,
            "{}: {} labels",
            lane.name.text,
            labels.len()
        );
        for (i, a) in labels.iter().enumerate() {
            for b in &labels[i + 1..] {
                assert!(
                    !a.rect.intersects(&b.rect),
                    "{}: {:?} and {:?} overlap",
                    lane.name.text,
                    a,
                    b
                );
            }
            assert!(a.rect.right() <= WIDTH, "{:?} runs off the chart", a);
            assert!(lane.rect.y <= a.rect.y && a.rect.bottom() <= lane.rect.bottom());
        }
    }
}

#[test]
fn labels_do_not_overlap_for_any_spacing_of_events() {
    // Every event a fraction of a pixel to a few hundred pixels apart, at both ends of the
    // axis: the packing still keeps every label clear of every other.
    for gap in [0.0, 0.01, 0.3, 2.0, 7.5, 40.0, 400.0] {
        let kinds = [
            EventKind::Bound,
            EventKind::Registered,
            EventKind::Passing,
            EventKind::Health503,
            EventKind::Deregistered,
            EventKind::ListenerClosed,
            EventKind::Drained,
            EventKind::Exited,
        ];
        let mut end = Lane::new("late");
        let mut start = Lane::new("early");
        for (i, k) in kinds.iter().enumerate() {
            start = start.event(i as f64 * gap, k.clone());
            end = end.event(3000.0 - i as f64 * gap, k.clone());
        }
        let mut s = Section::new("s");
        s.lanes = vec![start, end];
        for lane in &mut s.lanes {
            lane.derive_bands(3000.0);
        }
        let run = Run {
            sections: vec![s],
            ..Run::default()
        };
        for lane in &layout(&run).sections[0].lanes {
            let labels = lane.labels();
            for (i, a) in labels.iter().enumerate() {
                for b in &labels[i + 1..] {
                    assert!(!a.rect.intersects(&b.rect), "gap {gap}: {a:?} and {b:?}");
                }
            }
        }
    }
}

#[test]
fn labels_of_the_requests_panel_do_not_overlap() {
    let l = layout(&synthetic());
    for s in &l.sections {
        let r = &s.requests;
        let mut labels = vec![&r.caption, &r.totals, &r.answered_label, &r.failed_label];
        labels.extend(&r.scale_labels);
        for (i, a) in labels.iter().enumerate() {
            for b in &labels[i + 1..] {
                assert!(!a.rect.intersects(&b.rect), "{a:?} and {b:?} overlap");
            }
        }
    }
}

#[test]
fn buckets_add_up_to_the_totals() {
    let run = synthetic();
    let l = layout(&run);
    for (s, laid) in run.sections.iter().zip(&l.sections) {
        let r = &laid.requests;
        let answered: u64 = r.buckets.iter().map(|b| b.answered).sum();
        let failed: u64 = r.buckets.iter().map(|b| b.failed).sum();
        assert_eq!(answered, s.requests.answered());
        assert_eq!(failed, s.requests.failed());
        assert_eq!((r.answered, r.failed), (answered, failed));
        assert!(r.buckets.len() as u64 <= MAX_BUCKETS);
        assert!(r.buckets.len() >= 50, "{} buckets", r.buckets.len());
        for b in &r.buckets {
            assert_eq!(b.to_ms - b.from_ms, l.bucket_ms);
            assert_eq!(b.failed_bar.is_some(), b.failed > 0);
            assert_eq!(b.answered_bar.is_some(), b.answered > 0);
        }
    }
    assert!(run.sections[1].requests.failed() > 0);
}

#[test]
fn bucket_size_keeps_between_fifty_and_one_fifty_buckets() {
    assert_eq!(bucket_ms(1000.0), 10);
    assert_eq!(bucket_ms(1500.0), 10);
    assert_eq!(bucket_ms(1600.0), 20);
    assert_eq!(bucket_ms(6000.0), 50);
    assert_eq!(bucket_ms(70_000.0), 500);
    for end in [120.0, 800.0, 2500.0, 9000.0, 61_000.0] {
        let n = (end / bucket_ms(end) as f64).ceil();
        assert!((50.0..=150.0).contains(&n), "{end}: {n} buckets");
    }
}

#[test]
fn a_request_late_in_a_recorder_is_counted() {
    let rec = Recorder::new();
    rec.event("a", EventKind::Bound);
    rec.request(true);
    rec.request(false);
    rec.request_at(rec.origin() + std::time::Duration::from_millis(40), true);
    let s = rec.section("s");
    assert_eq!((s.requests.answered(), s.requests.failed()), (2, 1));
    assert_eq!(s.lanes.len(), 1);
    assert_eq!(s.requests.between(40, 41), (1, 0));
}

#[test]
fn bands_follow_from_the_events() {
    let mut lane = ours("a", 10.0, 100.0);
    lane.derive_bands(1000.0);
    let kinds: Vec<BandKind> = lane.bands.iter().map(|b| b.kind).collect();
    assert_eq!(
        kinds,
        [BandKind::Routable, BandKind::Grace, BandKind::Draining]
    );
    assert_eq!(lane.bands[0].from_ms, 10.9);
    assert_eq!(lane.bands[0].to_ms, 101.2);

    let mut lane = seed("s", 0.0, 100.0);
    lane.derive_bands(5000.0);
    let still = lane
        .bands
        .iter()
        .find(|b| b.kind == BandKind::ExitedStillRouted)
        .expect("the seed's instance exits while routed");
    assert_eq!((still.from_ms, still.to_ms), (100.5, 1000.0));
    // Its label shows over the routable band it hides, whose own label stays out from under it.
    let run = Run {
        sections: vec![Section {
            lanes: vec![lane],
            ..Section::new("s")
        }],
        ..Run::default()
    };
    let laid = layout(&run);
    let bands = &laid.sections[0].lanes[0].bands;
    let overlay = bands
        .iter()
        .find(|b| b.kind == BandKind::ExitedStillRouted)
        .unwrap();
    assert!(overlay.label.is_some(), "{bands:?}");
    let routable = bands.iter().find(|b| b.kind == BandKind::Routable).unwrap();
    if let Some(label) = &routable.label {
        assert!(!label.rect.intersects(&overlay.rect));
    }
    // Drawn after the routable band, so on top of it.
    let at = |k: BandKind| bands.iter().position(|b| b.kind == k).unwrap();
    assert!(at(BandKind::Routable) < at(BandKind::ExitedStillRouted));

    // Registered with its check passing, no passing event of its own: routable from there.
    let mut lane = Lane::new("r")
        .event(3.0, EventKind::Registered)
        .event(90.0, EventKind::Deregistered);
    lane.derive_bands(800.0);
    assert_eq!((lane.bands[0].from_ms, lane.bands[0].to_ms), (3.0, 90.0));

    // Routable before the window began, exited in it, never deregistered.
    let mut lane = Lane::new("w")
        .event(0.0, EventKind::Sigterm)
        .event(2.0, EventKind::Exited);
    lane.routable_from_ms = Some(0.0);
    lane.derive_bands(5000.0);
    let kinds: Vec<(BandKind, f64, f64)> = lane
        .bands
        .iter()
        .map(|b| (b.kind, b.from_ms, b.to_ms))
        .collect();
    assert_eq!(
        kinds,
        [
            (BandKind::Routable, 0.0, 5000.0),
            (BandKind::ExitedStillRouted, 2.0, 5000.0)
        ]
    );

    // Still passing when the run ended: routable to the end.
    let mut lane = Lane::new("up").event(5.0, EventKind::Passing);
    lane.derive_bands(800.0);
    assert_eq!(lane.bands[0].to_ms, 800.0);
}

#[test]
fn renders_well_formed_svg_with_lanes_and_totals() {
    let run = synthetic();
    let svg = render(&run);
    let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(
        root.tag_name().namespace(),
        Some("http://www.w3.org/2000/svg")
    );
    let sections: Vec<_> = root
        .descendants()
        .filter(|n| n.attribute("class") == Some("section"))
        .collect();
    assert_eq!(sections.len(), 2);
    assert_eq!(sections[1].attribute("data-section"), Some("baseline"));
    for (node, s) in sections.iter().zip(&run.sections) {
        let lanes: Vec<&str> = node
            .descendants()
            .filter(|n| n.attribute("class") == Some("lane"))
            .filter_map(|n| n.attribute("data-lane"))
            .collect();
        let expected: Vec<&str> = s.lanes.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(lanes, expected);
        let totals = node
            .descendants()
            .find(|n| n.attribute("class") == Some("totals"))
            .expect("totals");
        // Written out: one request every 0.37 ms for 2.3 s is 6 217, every one answered in
        // ours; the baseline fails 1 217 of them.
        let expected = if s.baseline {
            "answered 5 000, failed 1 217"
        } else {
            "answered 6 217, failed 0"
        };
        assert_eq!(totals.text(), Some(expected));
        assert_eq!(
            totals.attribute("data-answered"),
            Some(s.requests.answered().to_string().as_str())
        );
        assert_eq!(
            totals.attribute("data-failed"),
            Some(s.requests.failed().to_string().as_str())
        );
        for lane in node
            .descendants()
            .filter(|n| n.attribute("class") == Some("lane"))
        {
            let events = lane
                .descendants()
                .filter(|n| n.attribute("class") == Some("event"))
                .count();
            assert!(events >= 6);
        }
    }
    assert!(svg.contains("Rolling restart — synthetic"));
    assert!(svg.contains("time since the run started (ms)"));
    // The failed bars are drawn (the baseline failed) in the hatch.
    assert!(
        root.descendants()
            .any(|n| n.attribute("class") == Some("failed") && n.children().any(|c| c.is_element()))
    );
}

#[test]
fn text_is_escaped() {
    let mut run = synthetic();
    run.title = "a < b & \"c\"".into();
    run.sections[0].lanes[0].name = "<lane> & 'x' \"y\"".into();
    let svg = render(&run);
    let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
    assert!(
        doc.descendants()
            .any(|n| n.attribute("data-lane") == Some("<lane> & 'x' 'y'"))
    );
}

#[test]
fn digits_are_grouped() {
    assert_eq!(group_digits(0), "0");
    assert_eq!(group_digits(999), "999");
    assert_eq!(group_digits(12345), "12 345");
    assert_eq!(group_digits(1234567), "1 234 567");
    assert_eq!(totals_text(12345, 0), "answered 12 345, failed 0");
}

#[test]
#[ignore = "writes the synthetic chart to $TIMELINE_OUT to look at"]
fn write_synthetic() {
    let path = std::env::var("TIMELINE_OUT").unwrap_or_else(|_| "/tmp/synthetic.svg".into());
    write(&synthetic(), std::path::Path::new(&path)).unwrap();
}

#[test]
fn a_browser_draws_the_chart_with_both_request_colours() {
    let Some(browser) = discoverable_testkit::browser::Browser::require(
        "a_browser_draws_the_chart_with_both_request_colours",
    ) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("timeline-shot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (svg, png) = (dir.join("synthetic.svg"), dir.join("synthetic.png"));
    let run = synthetic();
    write(&run, &svg).unwrap();
    let height = layout(&run).height as u32;
    browser
        .screenshot(&format!("file://{}", svg.display()), &png, 1200, height)
        .expect("screenshot");
    let census = Census::of_png(&png).expect("decode the screenshot");
    let _ = std::fs::remove_dir_all(&dir);
    println!("{census:?}, {:.3} drawn", census.drawn_share());
    assert!(census.drawn_share() > 0.05, "{census:?}");
    // Both sections have answered bars; the baseline's failed bars are hatched, so at least
    // their orange shows between the stripes.
    assert!(census.answered > 2000, "{census:?}");
    assert!(census.failed > 300, "{census:?}");
}
