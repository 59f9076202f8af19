use super::*;

const NOW: i64 = 1_741_946_405;

fn settings() -> PlanSettings {
    PlanSettings {
        limit: 10_000,
        initial_lookback: Duration::from_secs(300),
        offset_ttl: None,
        overlap: Duration::from_secs(120),
    }
}

fn state_with_offset(obtained: i64, checkpoint: i64) -> State {
    let mut state = State::new("h", "1;2");
    state.offset = Some("abc;def".into());
    state.offset_obtained_at = Some(obtained);
    state.checkpoint = Some(checkpoint);
    state
}

fn page(events: u64, cut: bool, max_start: Option<f64>) -> PageResult {
    PageResult {
        events,
        offset: format!("o{events}"),
        cut_at_limit: cut,
        max_event_start: max_start,
        requested_at: NOW,
    }
}

#[test]
fn first_run_starts_by_time_without_an_upper_bound() {
    let (planner, notices) = Planner::stateful(None, "h", "1;2", &settings(), NOW);
    assert!(notices.is_empty());
    assert_eq!(
        planner.next_request(u64::MAX).query,
        Query::Time {
            from: NOW - 300,
            to: None
        }
    );
    assert_eq!(planner.checkpoint(), Some(NOW - 300));
}

#[test]
fn later_runs_continue_by_offset() {
    let state = state_with_offset(NOW - 300, NOW - 400);
    let (planner, notices) = Planner::stateful(Some(&state), "h", "1;2", &settings(), NOW);
    assert!(notices.is_empty());
    assert_eq!(
        planner.next_request(5).query,
        Query::Offset("abc;def".into())
    );
}

#[test]
fn pages_are_sized_to_the_remaining_budget() {
    let (planner, _) = Planner::stateful(None, "h", "1;2", &settings(), NOW);
    assert_eq!(planner.next_request(2_500).limit, 2_500);
    assert_eq!(planner.next_request(50_000).limit, 10_000);
    assert_eq!(planner.next_request(0).limit, 1);
}

#[test]
fn a_full_page_asks_for_more_and_a_short_one_is_caught_up() {
    let (mut planner, _) = Planner::stateful(None, "h", "1;2", &settings(), NOW);
    assert_eq!(
        planner.page_done(&page(100, false, None), 100),
        Progress::More
    );
    assert_eq!(planner.next_request(1).query, Query::Offset("o100".into()));
    assert_eq!(planner.page_done(&page(5, true, None), 100), Progress::More);
    assert_eq!(
        planner.page_done(&page(5, false, None), 100),
        Progress::CaughtUp
    );
}

#[test]
fn checkpoint_follows_event_starts_and_catch_up_time_never_the_future() {
    let (mut planner, _) = Planner::stateful(None, "h", "1;2", &settings(), NOW);
    planner.page_done(&page(100, false, Some((NOW - 200) as f64 + 0.5)), 100);
    assert_eq!(planner.checkpoint(), Some(NOW - 200 - CHECKPOINT_MARGIN));
    // An event claiming a start in the future cannot move the checkpoint past the request.
    planner.page_done(&page(100, false, Some((NOW + 9_999) as f64)), 100);
    assert_eq!(planner.checkpoint(), Some(NOW - CHECKPOINT_MARGIN));
    // Caught up: the request time is the checkpoint; it never moves back.
    planner.page_done(&page(1, false, Some((NOW - 5_000) as f64)), 100);
    assert_eq!(planner.checkpoint(), Some(NOW - CHECKPOINT_MARGIN));
}

#[test]
fn expired_offset_recovers_from_checkpoint_minus_overlap() {
    let state = state_with_offset(NOW - 300, NOW - 1_000);
    let (mut planner, _) = Planner::stateful(Some(&state), "h", "1;2", &settings(), NOW);
    let notices = planner.offset_expired(NOW).unwrap();
    assert!(matches!(notices[0], Notice::Recovering { from, .. } if from == NOW - 1_120));
    assert_eq!(notices.len(), 1, "no gap within the horizon");
    assert_eq!(
        planner.next_request(10).query,
        Query::Time {
            from: NOW - 1_120,
            to: None
        }
    );
}

#[test]
fn a_checkpoint_beyond_twelve_hours_reports_the_exact_gap() {
    let old = NOW - 20 * 3600;
    let state = state_with_offset(NOW - 300, old);
    let (mut planner, _) = Planner::stateful(Some(&state), "h", "1;2", &settings(), NOW);
    let notices = planner.offset_expired(NOW).unwrap();
    let earliest = NOW - HORIZON + HORIZON_MARGIN;
    assert!(notices.contains(&Notice::Gap {
        from: old,
        to: earliest
    }));
    assert_eq!(
        planner.next_request(10).query,
        Query::Time {
            from: earliest,
            to: None
        }
    );
}

#[test]
fn recoveries_per_run_are_capped() {
    let (mut planner, _) = Planner::stateful(None, "h", "1;2", &settings(), NOW);
    for _ in 0..MAX_RECOVERIES {
        planner.offset_expired(NOW).unwrap();
    }
    assert!(matches!(
        planner.offset_expired(NOW),
        Err(ApiError::OffsetsKeepExpiring { .. })
    ));
}

#[test]
fn an_old_offset_beyond_its_ttl_is_not_used() {
    let state = state_with_offset(NOW - 7_200, NOW - 7_300);
    let ttl = PlanSettings {
        offset_ttl: Some(Duration::from_secs(3_600)),
        ..settings()
    };
    let (planner, notices) = Planner::stateful(Some(&state), "h", "1;2", &ttl, NOW);
    assert!(
        matches!(&notices[0], Notice::Recovering { reason, .. } if reason.contains("offset_ttl"))
    );
    assert_eq!(
        planner.next_request(1).query,
        Query::Time {
            from: NOW - 7_420,
            to: None
        }
    );
}

#[test]
fn a_changed_config_set_does_not_reuse_the_offset() {
    let state = state_with_offset(NOW - 60, NOW - 100);
    let (planner, notices) = Planner::stateful(Some(&state), "h", "1;2;3", &settings(), NOW);
    assert!(
        matches!(&notices[0], Notice::Recovering { reason, .. } if reason.contains("config ids"))
    );
    assert!(matches!(planner.next_request(1).query, Query::Time { .. }));
}

#[test]
fn a_rejected_from_is_clamped_once_and_a_replay_reports_no_gap() {
    let mut planner = Planner::replay(NOW - HORIZON + 10, NOW - 60, 10);
    let notices = planner.rejected_from(NOW).unwrap();
    let clamped = NOW - HORIZON + 2 * HORIZON_MARGIN;
    assert_eq!(
        notices,
        vec![Notice::Clamped {
            from: NOW - HORIZON + 10,
            to: clamped
        }]
    );
    assert!(planner.rejected_from(NOW).is_none(), "only once");
}

#[test]
fn a_twelve_hour_first_run_starts_at_the_edge_without_a_gap() {
    let twelve_hours = PlanSettings {
        initial_lookback: Duration::from_secs(HORIZON as u64),
        ..settings()
    };
    let (mut planner, notices) = Planner::stateful(None, "h", "1;2", &twelve_hours, NOW);
    assert!(notices.is_empty());
    let from = NOW - HORIZON + HORIZON_MARGIN;
    assert_eq!(
        planner.next_request(1).query,
        Query::Time { from, to: None }
    );
    // Even if the API's clock is ahead and it refuses: clamp, but nothing was promised.
    let notices = planner.rejected_from(NOW + 30).unwrap();
    assert!(
        !notices.iter().any(|n| matches!(n, Notice::Gap { .. })),
        "{notices:?}"
    );
}

#[test]
fn a_checkpoint_just_inside_the_horizon_is_no_gap() {
    // 11h58m ago: still retrievable. The overlap is cut to the edge, but nothing is lost.
    let checkpoint = NOW - HORIZON + 120;
    let state = state_with_offset(NOW - 300, checkpoint);
    let (mut planner, _) = Planner::stateful(Some(&state), "h", "1;2", &settings(), NOW);
    let notices = planner.offset_expired(NOW).unwrap();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(
        planner.next_request(1).query,
        Query::Time {
            from: NOW - HORIZON + HORIZON_MARGIN,
            to: None
        }
    );
}

#[test]
fn a_cut_page_is_asked_again_with_half_the_limit_down_to_a_floor() {
    let (mut planner, _) = Planner::stateful(None, "h", "1;2", &settings(), NOW);
    let query = planner.next_request(u64::MAX).query;
    assert_eq!(planner.page_cut(10_000), Some(5_000));
    let again = planner.next_request(u64::MAX);
    assert_eq!(again.query, query, "the same query, only smaller");
    assert_eq!(again.limit, 5_000);
    let mut limits = Vec::new();
    while let Some(limit) = planner.page_cut(planner.next_request(u64::MAX).limit) {
        limits.push(limit);
    }
    assert_eq!(limits, vec![2_500, 1_250, 625, 312, 156, MIN_CUT_LIMIT]);
    assert_eq!(planner.smallest_limit(), Some(MIN_CUT_LIMIT));
    // A configured limit below the floor is the floor.
    let mut small = Planner::replay(NOW - 600, NOW - 60, 10);
    assert_eq!(small.page_cut(10), None);
}

#[test]
fn complete_pages_grow_a_shrunk_limit_back() {
    let (mut planner, _) = Planner::stateful(None, "h", "1;2", &settings(), NOW);
    planner.page_cut(10_000);
    planner.page_cut(5_000);
    let mut seen = Vec::new();
    for _ in 0..3 * PAGES_BEFORE_GROWING {
        let limit = planner.next_request(u64::MAX).limit;
        seen.push(limit);
        planner.page_done(&page(u64::from(limit), false, None), limit);
    }
    assert_eq!(seen[0], 2_500);
    assert_eq!(seen[PAGES_BEFORE_GROWING as usize], 5_000);
    assert_eq!(seen[2 * PAGES_BEFORE_GROWING as usize], 10_000);
    assert_eq!(
        planner.next_request(u64::MAX).limit,
        10_000,
        "never above the configured limit"
    );
    assert_eq!(planner.smallest_limit(), Some(2_500));
}

#[test]
fn window_mode_matches_the_python_script_with_a_safety_lag() {
    let (from, to) = window_range(Duration::from_secs(300), NOW);
    let planner = Planner::replay(from, to, 600_000);
    assert_eq!(
        planner.next_request(u64::MAX).query,
        Query::Time {
            from: NOW - 360,
            to: Some(NOW - 60)
        }
    );
}

fn refused(id: u64, checkpoint: Option<i64>) -> RefusedConfig {
    RefusedConfig {
        id,
        status: 403,
        reason: "not authorized".into(),
        since: NOW - 900,
        checkpoint,
    }
}

#[test]
fn refused_ids_are_tried_alone_first_and_the_others_asked_for_together() {
    let plan = plan_config_ids(&[1, 2, 3], &[refused(3, Some(NOW - 600)), refused(2, None)]);
    assert_eq!(
        plan.alone.iter().map(|r| r.id).collect::<Vec<_>>(),
        [2, 3],
        "in configured order"
    );
    assert_eq!(plan.together, [1]);
    assert!(plan.rejoined.is_empty());
    assert_eq!(join_ids(&plan.together), "1");
    // Nothing refused: one set, as configured.
    let plan = plan_config_ids(&[1, 2], &[]);
    assert_eq!((plan.alone.len(), plan.together), (0, vec![1, 2]));
}

#[test]
fn a_refused_id_no_longer_configured_is_forgotten() {
    let plan = plan_config_ids(&[1, 2], &[refused(9, Some(NOW - 600))]);
    assert!(plan.alone.is_empty() && plan.rejoined.is_empty());
    assert_eq!(plan.together, [1, 2]);
}

#[test]
fn when_only_refused_ids_are_configured_they_are_asked_for_together_with_their_checkpoints() {
    // The others were removed from config_id: nothing is left to set them apart from.
    let plan = plan_config_ids(&[2], &[refused(2, Some(NOW - 600))]);
    assert!(plan.alone.is_empty());
    assert_eq!(plan.together, [2]);
    assert_eq!(plan.rejoined, [refused(2, Some(NOW - 600))]);
}

#[test]
fn isolating_helps_only_when_some_but_not_all_ids_are_refused_alone() {
    assert_eq!(healthy_ids(&[1, 2, 3], &[2]), Some(vec![1, 3]));
    assert_eq!(healthy_ids(&[1, 2], &[]), None, "refused only together");
    assert_eq!(healthy_ids(&[1, 2], &[1, 2]), None, "nothing left");
    assert_eq!(healthy_ids(&[1], &[1]), None);
}

#[test]
fn a_probe_asks_for_one_event_of_a_minute_the_api_accepts() {
    let probe = probe_request(NOW);
    assert_eq!(probe.limit, 1);
    let Query::Time { from, to: Some(to) } = probe.query else {
        panic!("a probe is a closed time window: {probe:?}")
    };
    assert_eq!(to - from, 60);
    assert!(to <= NOW - 5, "the API refuses `to` later than now - 5 s");
    assert!(from > earliest_from(NOW));
}

#[test]
fn a_resumed_id_starts_by_time_from_its_own_checkpoint_minus_the_overlap() {
    let (planner, notices) = Planner::resume(Some(NOW - 3_600), &settings(), NOW);
    assert_eq!(
        planner.next_request(u64::MAX).query,
        Query::Time {
            from: NOW - 3_600 - 120,
            to: None
        }
    );
    assert_eq!(planner.checkpoint(), Some(NOW - 3_600));
    assert!(matches!(notices[..], [Notice::Recovering { from, .. }] if from == NOW - 3_720));
    // Without a checkpoint (refused before its first page), like a first run.
    let (planner, notices) = Planner::resume(None, &settings(), NOW);
    assert!(notices.is_empty());
    assert_eq!(
        planner.next_request(1).query,
        Query::Time {
            from: NOW - 300,
            to: None
        }
    );
}

#[test]
fn an_id_refused_longer_than_the_api_keeps_events_reports_its_gap() {
    let checkpoint = NOW - HORIZON - 3_600;
    let (planner, notices) = Planner::resume(Some(checkpoint), &settings(), NOW);
    let start = earliest_from(NOW);
    assert_eq!(
        planner.next_request(1).query,
        Query::Time {
            from: start,
            to: None
        }
    );
    assert!(
        notices.contains(&Notice::Gap {
            from: checkpoint,
            to: start
        }),
        "{notices:?}"
    );
}

#[test]
fn a_set_that_loses_an_id_goes_on_by_time_from_its_checkpoint() {
    let state = state_with_offset(NOW - 60, NOW - 400);
    let (mut planner, _) = Planner::stateful(Some(&state), "h", "1;2", &settings(), NOW);
    let notices = planner.config_ids_changed(NOW, "config id 2 refused".into());
    assert!(matches!(&notices[..], [Notice::Recovering { reason, .. }] if reason.contains("2")));
    assert_eq!(
        planner.next_request(1).query,
        Query::Time {
            from: NOW - 520,
            to: None
        }
    );
    assert_eq!(planner.checkpoint(), Some(NOW - 400));
    // Not an expiry: the run keeps all its recoveries.
    for _ in 0..MAX_RECOVERIES {
        planner.offset_expired(NOW).unwrap();
    }
}

#[test]
fn a_replay_that_loses_an_id_or_its_offset_keeps_its_end() {
    let mut planner = Planner::replay(NOW - 600, NOW - 60, 10);
    planner.config_ids_changed(NOW, "config id 2 refused".into());
    assert_eq!(
        planner.next_request(1).query,
        Query::Time {
            from: NOW - 600,
            to: Some(NOW - 60)
        }
    );
    planner.page_done(&page(10, true, Some((NOW - 500) as f64)), 10);
    planner.offset_expired(NOW).unwrap();
    assert_eq!(
        planner.next_request(1).query,
        Query::Time {
            from: NOW - 500 - CHECKPOINT_MARGIN,
            to: Some(NOW - 60)
        }
    );
}

#[test]
fn a_set_rejoined_by_a_resumed_id_starts_from_the_earlier_checkpoint() {
    assert_eq!(joined_checkpoint(Some(10), Some(5)), Some(5));
    assert_eq!(joined_checkpoint(Some(5), Some(10)), Some(5));
    assert_eq!(joined_checkpoint(None, Some(5)), Some(5));
    assert_eq!(joined_checkpoint(Some(5), None), Some(5));
    assert_eq!(joined_checkpoint(None, None), None);
}
