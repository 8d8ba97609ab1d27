//! Refused events cost no memory beyond the ones listed: an allocator that counts the
//! allocations of its thread watches `parse_body` read bodies of 20 000 refused events
//! of the cheapest kinds (a refusal every two or three bytes).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use voicemon_core::body::{parse_body, Framing, LISTED_REJECTIONS};

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

/// The system allocator, counting each thread's allocations.
struct Counting;

fn count_one() {
    let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
}

// SAFETY: every call is passed to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// 2026-11-27T12:00:00Z.
const NOW_MS: i64 = 1_795_780_800_000;
const EVENTS: usize = 20_000;

/// The allocations `parse_body` makes on this thread for `body`, which must refuse
/// every one of its [`EVENTS`] events.
fn allocations_to_refuse(body: &str, framing: Framing) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    let parsed = parse_body(body.as_bytes(), framing, NOW_MS).expect("the body is JSON");
    let allocations = ALLOCATIONS.with(Cell::get) - before;
    assert_eq!(parsed.rejections.total, EVENTS);
    assert_eq!(parsed.rejections.listed.len(), LISTED_REJECTIONS);
    allocations
}

#[test]
fn refusing_a_body_of_numbers_allocates_for_the_listed_refusals_only() {
    let allocations = allocations_to_refuse(&"1\n".repeat(EVENTS), Framing::Ndjson);
    assert!(allocations <= 4 * LISTED_REJECTIONS, "{allocations} allocations for {EVENTS} refusals");
}

#[test]
fn refusing_a_body_of_empty_objects_allocates_for_the_listed_refusals_only() {
    let allocations = allocations_to_refuse(&"{}\n".repeat(EVENTS), Framing::Ndjson);
    assert!(allocations <= 4 * LISTED_REJECTIONS, "{allocations} allocations for {EVENTS} refusals");
}

#[test]
fn refusing_an_array_of_numbers_allocates_for_the_listed_refusals_only() {
    let body = format!("[{}1]", "1,".repeat(EVENTS - 1));
    let allocations = allocations_to_refuse(&body, Framing::Json);
    assert!(allocations <= 4 * LISTED_REJECTIONS, "{allocations} allocations for {EVENTS} refusals");
}
