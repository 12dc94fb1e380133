use super::*;
use proptest::prelude::*;

const GICR_SGI: u64 = 0x1_0000;

fn raised(n: usize) -> Vec<AtomicU64> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

fn bits(r: &[AtomicU64], v: usize) -> u64 {
    r[v].load(Ordering::Relaxed)
}

fn v3(n: usize) -> (EmulatedGic, Vec<AtomicU64>) {
    let mpidrs: Vec<u64> = (0..n as u64).map(|i| ((i >> 4) << 8) | (i & 15)).collect();
    (EmulatedGic::new(Version::V3, &mpidrs), raised(n))
}

fn v2(n: usize) -> (EmulatedGic, Vec<AtomicU64>) {
    let mpidrs: Vec<u64> = (0..n as u64).collect();
    (EmulatedGic::new(Version::V2, &mpidrs), raised(n))
}

#[test]
fn gicv3_distributor_identifies_itself() {
    let (gic, r) = v3(2);
    let rd = |o, w| gic.read_distributor(0, o, w, r.as_slice());
    // ARE and DS read as one; nothing enabled at reset.
    assert_eq!(rd(0x0, 4), 0x50);
    // ITLinesNumber 1 (64 INTIDs), CPUNumber 1, IDbits 9.
    assert_eq!(rd(0x4, 4), 1 | 1 << 5 | 9 << 19);
    assert_eq!(rd(0x8, 4), 0x43b);
    assert_eq!(rd(0xffe8, 4) >> 4 & 0xf, 3, "PIDR2.ArchRev");
    assert_eq!([rd(0xfff0, 4), rd(0xfff4, 4), rd(0xfff8, 4), rd(0xfffc, 4)], [0x0d, 0xf0, 0x05, 0xb1]);
    // Group 1 for every SPI; the private words are the redistributors'.
    assert_eq!(rd(0x84, 4), 0xffff_ffff);
    assert_eq!(rd(0x80, 4), 0);
    assert_eq!(rd(0x88, 4), 0, "no INTIDs past 63");
}

#[test]
fn gicv3_ctlr_keeps_only_the_group_enables() {
    let (mut gic, r) = v3(1);
    let wake = gic.write_distributor(0, 0, 4, 0xffff_ffff, r.as_slice());
    assert_eq!(wake, Wake(1), "enabling the group wakes every vCPU");
    assert_eq!(gic.read_distributor(0, 0, 4, r.as_slice()), 0x53);
    gic.write_distributor(0, 0, 4, 0, r.as_slice());
    assert_eq!(gic.read_distributor(0, 0, 4, r.as_slice()), 0x50);
}

#[test]
fn gicv3_redistributors_name_their_vcpus() {
    let (mut gic, r) = v3(3);
    for v in 0..3u64 {
        let typer = gic.read_redistributor(v * 0x2_0000 + 8, 8, r.as_slice());
        assert_eq!(typer >> 32, v, "affinity");
        assert_eq!(typer >> 8 & 0xffff, v, "Processor_Number");
        assert_eq!(typer & 1 << 4 != 0, v == 2, "Last on the last one only");
        assert_eq!(typer & 3, 0, "no LPIs");
        // The halves read the same.
        let lo = gic.read_redistributor(v * 0x2_0000 + 8, 4, r.as_slice());
        let hi = gic.read_redistributor(v * 0x2_0000 + 12, 4, r.as_slice());
        assert_eq!(lo | hi << 32, typer);
        assert_eq!(gic.read_redistributor(v * 0x2_0000 + 0xffe8, 4, r.as_slice()) >> 4 & 0xf, 3);
    }
    // Asleep from reset; ProcessorSleep written, ChildrenAsleep follows.
    assert_eq!(gic.read_redistributor(0x14, 4, r.as_slice()), 0b110);
    gic.write_redistributor(0x14, 4, 0, r.as_slice());
    assert_eq!(gic.read_redistributor(0x14, 4, r.as_slice()), 0);
    assert_eq!(gic.read_redistributor(0x2_0000 + 0x14, 4, r.as_slice()), 0b110, "vCPU 1 still asleep");
    gic.write_redistributor(0x14, 4, 0b10, r.as_slice());
    assert_eq!(gic.read_redistributor(0x14, 4, r.as_slice()), 0b110);
    // Past the last redistributor: nothing.
    assert_eq!(gic.read_redistributor(3 * 0x2_0000 + 8, 8, r.as_slice()), 0);
    // SGI frame: group 1, SGIs edge.
    assert_eq!(gic.read_redistributor(GICR_SGI + 0x80, 4, r.as_slice()), 0xffff_ffff);
    assert_eq!(gic.read_redistributor(GICR_SGI + 0xc00, 4, r.as_slice()), 0xaaaa_aaaa);
}

#[test]
fn a_disabled_interrupt_waits_until_enabled() {
    let (mut gic, r) = v3(1);
    gic.write_distributor(0, 0, 4, 0b10, r.as_slice());
    let wake = gic.raise(0, 27, r.as_slice());
    assert_eq!(wake, Wake(0), "disabled: pending, and no CPU signalled");
    assert_eq!(gic.deliverable(0, bits(&r, 0)), 0);
    assert_eq!(gic.read_redistributor(GICR_SGI + 0x200, 4, r.as_slice()), 1 << 27, "pending reads back");
    let wake = gic.write_redistributor(GICR_SGI + 0x100, 4, 1 << 27, r.as_slice());
    assert_eq!(wake, Wake(1), "an enable write wakes the vCPU");
    assert_eq!(gic.deliverable(0, bits(&r, 0)), 1 << 27);
    // Disabled at the distributor: nothing goes.
    gic.write_distributor(0, 0, 4, 0, r.as_slice());
    assert_eq!(gic.deliverable(0, bits(&r, 0)), 0);
    // ICENABLER reads the enables too, and clears.
    assert_eq!(gic.read_redistributor(GICR_SGI + 0x180, 4, r.as_slice()), 1 << 27);
    gic.write_redistributor(GICR_SGI + 0x180, 4, 1 << 27, r.as_slice());
    assert_eq!(gic.enabled(0), 0);
    // ICPENDR withdraws it.
    gic.write_redistributor(GICR_SGI + 0x280, 4, 1 << 27, r.as_slice());
    assert_eq!(bits(&r, 0), 0);
}

#[test]
fn priorities_take_bytes_and_words() {
    let (mut gic, r) = v3(2);
    gic.write_redistributor(0x2_0000 + GICR_SGI + 0x41b, 1, 0xa0, r.as_slice());
    assert_eq!(gic.priority(1, 27), 0xa0);
    assert_eq!(gic.priority(0, 27), 0, "vCPU 0's own byte");
    assert_eq!(gic.read_redistributor(0x2_0000 + GICR_SGI + 0x418, 4, r.as_slice()), 0xa000_0000);
    gic.write_distributor(0, 0x420, 4, 0x1122_3344, r.as_slice());
    assert_eq!([gic.priority(0, 32), gic.priority(0, 35)], [0x44, 0x11]);
    assert_eq!(gic.read_distributor(1, 0x423, 1, r.as_slice()), 0x11);
    // GICv3's distributor has no private priorities.
    gic.write_distributor(0, 0x400, 4, u64::MAX, r.as_slice());
    assert_eq!(gic.priority(0, 0), 0);
    // Two-byte accesses are not architected: ignored.
    gic.write_distributor(0, 0x420, 2, 0xffff, r.as_slice());
    assert_eq!(gic.priority(0, 32), 0x44);
    assert_eq!(gic.read_distributor(0, 0x420, 2, r.as_slice()), 0);
}

#[test]
fn spis_follow_irouter() {
    let (mut gic, r) = v3(2);
    gic.write_distributor(0, 0, 4, 0b10, r.as_slice());
    // IROUTER for INTID 40 names vCPU 1, in one 64-bit write.
    gic.write_distributor(0, 0x6000 + 40 * 8, 8, 1, r.as_slice());
    assert_eq!(gic.read_distributor(0, 0x6000 + 40 * 8, 8, r.as_slice()), 1);
    assert_eq!(gic.spi_target(40), Some(1));
    gic.write_distributor(0, 0x104, 4, 1 << 8 | 1 << 9, r.as_slice());
    assert_eq!(gic.write_distributor(0, 0x204, 4, 1 << 8, r.as_slice()), Wake(0b10));
    assert_eq!(bits(&r, 1), 1 << 40);
    assert_eq!(gic.deliverable(1, bits(&r, 1)), 1 << 40);
    assert_eq!(gic.read_distributor(0, 0x204, 4, r.as_slice()), 1 << 8);
    gic.write_distributor(0, 0x284, 4, 1 << 8, r.as_slice());
    assert_eq!(bits(&r, 1), 0);
    // Routed to no vCPU: held, and delivered once routed.
    gic.write_distributor(0, 0x6000 + 41 * 8, 4, 0x0f00, r.as_slice());
    assert_eq!(gic.spi_target(41), None);
    assert_eq!(gic.write_distributor(0, 0x204, 4, 1 << 9, r.as_slice()), Wake(0));
    assert_eq!(gic.read_distributor(0, 0x204, 4, r.as_slice()), 1 << 9, "still pending");
    assert_eq!(gic.write_distributor(0, 0x6000 + 41 * 8, 4, 0, r.as_slice()), Wake(1));
    assert_eq!(bits(&r, 0), 1 << 41);
    // IRM: any vCPU; the affinity bits beyond Aff3..Aff0 do not stick.
    gic.write_distributor(0, 0x6000 + 42 * 8, 8, u64::MAX, r.as_slice());
    assert_eq!(gic.read_distributor(0, 0x6000 + 42 * 8, 8, r.as_slice()), 0xff_80ff_ffff);
    assert_eq!(gic.spi_target(42), Some(0));
    // SPI configuration: the edge bits only.
    gic.write_distributor(0, 0xc08, 4, 0xffff_ffff, r.as_slice());
    assert_eq!(gic.read_distributor(0, 0xc08, 4, r.as_slice()), 0xaaaa_aaaa);
    // IROUTER of a private INTID or past the SPIs: nothing.
    gic.write_distributor(0, 0x6000 + 8 * 8, 8, 1, r.as_slice());
    assert_eq!(gic.read_distributor(0, 0x6000 + 8 * 8, 8, r.as_slice()), 0);
}

#[test]
fn a_level_line_raises_on_rising_and_withdraws_on_falling() {
    for (mut gic, r) in [v3(2), v2(2)] {
        if gic.version() == Version::V2 {
            // ITARGETSR for INTID 32: CPU interface 0 (vCPU 0).
            gic.write_distributor(0, 0x820, 1, 1, r.as_slice());
        }
        // Disabled, rising: pending, nobody woken; falling: withdrawn.
        assert_eq!(gic.set_line(32, true, r.as_slice()), Wake(0));
        assert_eq!(bits(&r, 0), 1 << 32);
        gic.set_line(32, false, r.as_slice());
        assert_eq!(bits(&r, 0), 0);
        // Enabled, with its group.
        let group = if gic.version() == Version::V3 { 0b10 } else { 1 };
        gic.write_distributor(0, 0, 4, group, r.as_slice());
        gic.write_distributor(0, 0x104, 4, 1, r.as_slice());
        assert!(!gic.line_is_high(32));
        assert_eq!(gic.set_line(32, true, r.as_slice()), Wake(1), "rising: raised on its vCPU");
        assert_eq!(bits(&r, 0), 1 << 32);
        assert!(gic.line_is_high(32));
        // Taken into a list register; the line stays high: nothing new
        // until the guest ends it (the EOI maintenance looks again).
        r[0].store(0, Ordering::Relaxed);
        assert_eq!(gic.set_line(32, true, r.as_slice()), Wake(0));
        assert_eq!(bits(&r, 0), 0);
        // Raised, not yet delivered, then the line falls: no longer pending.
        gic.set_line(32, false, r.as_slice());
        gic.set_line(32, true, r.as_slice());
        assert_eq!(bits(&r, 0), 1 << 32);
        assert_eq!(gic.set_line(32, false, r.as_slice()), Wake(0));
        assert_eq!(bits(&r, 0), 0);
        assert!(!gic.line_is_high(32));
        // Not an SPI: nothing.
        assert_eq!(gic.set_line(27, true, r.as_slice()), Wake(0));
        assert_eq!(gic.set_line(64, true, r.as_slice()), Wake(0));
        assert!(!gic.line_is_high(27) && !gic.line_is_high(64) && !gic.line_is_high(u32::MAX));
        assert_eq!(bits(&r, 0) | bits(&r, 1), 0);
    }
}

#[test]
fn gicv3_sgis_by_affinity() {
    let mpidrs = [0x0, 0x1, 0x100];
    let gic = EmulatedGic::new(Version::V3, &mpidrs);
    // Aff1 0, target list bits 0 and 1.
    assert_eq!(gic.sgi1r_targets(0, 0b11 | 3 << 24), 0b011);
    // Aff1 1, target list bit 0.
    assert_eq!(gic.sgi1r_targets(0, 1 | 1 << 16), 0b100);
    // IRM: every other vCPU.
    assert_eq!(gic.sgi1r_targets(1, 1 << 40), 0b101);
    // Range selector 1 (Aff0 16..31): nobody.
    assert_eq!(gic.sgi1r_targets(0, 1 | 1 << 44), 0);
    let (mut gic, r) = v3(2);
    // Disabled on vCPU 1: pending there, nobody woken; enabled: woken.
    let wake = gic.send_sgi(0b10, 5, r.as_slice());
    assert_eq!((wake, bits(&r, 1), bits(&r, 0)), (Wake(0), 1 << 5, 0));
    gic.write_distributor(0, 0, 4, 0b10, r.as_slice());
    assert_eq!(gic.write_redistributor(0x2_0000 + GICR_SGI + 0x100, 4, 1 << 5, r.as_slice()), Wake(0b10));
    let wake = gic.send_sgi(0b10, 5, r.as_slice());
    assert_eq!((wake, bits(&r, 1), bits(&r, 0)), (Wake(0b10), 1 << 5, 0));
}

#[test]
fn gicv2_distributor() {
    let (mut gic, r) = v2(2);
    let read = |gic: &EmulatedGic, v, o, w| gic.read_distributor(v, o, w, r.as_slice());
    assert_eq!(read(&gic, 0, 0x4, 4), 1 | 1 << 5);
    assert_eq!(read(&gic, 0, 0xfe8, 4) >> 4 & 0xf, 2, "PIDR2.ArchRev");
    assert_eq!(read(&gic, 0, 0xffe8, 4), 0, "a 4 KiB distributor");
    assert_eq!(read(&gic, 0, 0x80, 4), 0, "group 0");
    // Each vCPU reads its own CPU interface in ITARGETSR0-7.
    assert_eq!(read(&gic, 1, 0x800, 4), 0x0202_0202);
    assert_eq!(read(&gic, 0, 0x81c, 1), 0x01);
    // SPI targets: only the domain's interfaces stick.
    gic.write_distributor(0, 0x822, 1, 0xff, r.as_slice());
    assert_eq!(read(&gic, 0, 0x820, 4), 0x0003_0000);
    assert_eq!(gic.spi_target(34), Some(0));
    // Banked private enables.
    gic.write_distributor(1, 0x100, 4, 1 << 27, r.as_slice());
    assert_eq!((gic.enabled(0), gic.enabled(1)), (0, 1 << 27));
    gic.write_distributor(0, 0, 4, 1, r.as_slice());
    assert_eq!(read(&gic, 0, 0, 4), 1);
    // GICD_SGIR: to the list, to the others, to oneself (SGIs 3, 4 and 6
    // enabled on both: a disabled one would only be pending).
    for vcpu in 0..2 {
        gic.write_distributor(vcpu, 0x100, 4, 1 << 3 | 1 << 4 | 1 << 6, r.as_slice());
    }
    assert_eq!(gic.write_distributor(0, 0xf00, 4, 0x2_0003, r.as_slice()), Wake(0b10));
    assert_eq!(bits(&r, 1), 1 << 3);
    assert_eq!(gic.write_distributor(1, 0xf00, 4, 1 << 24 | 4, r.as_slice()), Wake(0b01));
    assert_eq!(gic.write_distributor(1, 0xf00, 4, 2 << 24 | 6, r.as_slice()), Wake(0b10));
    assert_eq!((bits(&r, 0), bits(&r, 1)), (1 << 4, 1 << 3 | 1 << 6));
    assert_eq!(read(&gic, 0, 0xf00, 4), 0, "SGIR is write-only");
    // SGIs' pending bits are set through SGIR, not ISPENDR0, nor
    // cleared through ICPENDR0.
    gic.write_distributor(0, 0x200, 4, 0xffff_ffff, r.as_slice());
    assert_eq!(bits(&r, 0), 0xffff_0000 | 1 << 4);
    gic.write_distributor(0, 0x280, 4, 0xffff_ffff, r.as_slice());
    assert_eq!(bits(&r, 0), 1 << 4, "ICPENDR0 clears the PPIs only");
    // The SGIs are edge, read-only.
    gic.write_distributor(0, 0xc00, 4, 0, r.as_slice());
    assert_eq!(read(&gic, 0, 0xc00, 4), 0xaaaa_aaaa);
    // No redistributors.
    assert_eq!(gic.read_redistributor(8, 8, r.as_slice()), 0);
}

/// One access in a random stream: the distributor or a redistributor,
/// by a vCPU, at an offset (often a real register), of a width.
#[derive(Debug, Clone)]
struct Access {
    redistributor: bool,
    vcpu: usize,
    offset: u64,
    width: u8,
    value: u64,
    write: bool,
}

fn access(vcpus: usize) -> impl Strategy<Value = Access> {
    let offset = prop_oneof![
        0u64..0x1000,
        0x6000u64..0x6400,
        0xffe0u64..0x1_0000,
        0x1_0000u64..0x1_1000,
        any::<u64>(),
        (0usize..4, 0u64..0x1000).prop_map(|(v, o)| v as u64 * 0x2_0000 + 0x1_0000 + o),
    ];
    (
        any::<bool>(),
        0..vcpus + 1,
        offset,
        prop_oneof![Just(1u8), Just(2), Just(4), Just(8), any::<u8>()],
        any::<u64>(),
        any::<bool>(),
    )
        .prop_map(|(redistributor, vcpu, offset, width, value, write)| Access {
            redistributor,
            vcpu,
            offset,
            width,
            value,
            write,
        })
}

fn apply(gic: &mut EmulatedGic, r: &[AtomicU64], a: &Access) -> u64 {
    match (a.redistributor, a.write) {
        (false, false) => gic.read_distributor(a.vcpu, a.offset, a.width, r),
        (false, true) => gic.write_distributor(a.vcpu, a.offset, a.width, a.value, r).0,
        (true, false) => gic.read_redistributor(a.offset, a.width, r),
        (true, true) => gic.write_redistributor(a.offset, a.width, a.value, r).0,
    }
}

proptest! {
    /// Random traffic never panics, and keeps the invariants: nothing
    /// disabled (or with its group disabled) is deliverable, wake masks
    /// name only the domain's vCPUs, GICR_TYPER keeps its identity.
    #[test]
    fn random_traffic_keeps_the_invariants(
        gicv3 in any::<bool>(),
        accesses in proptest::collection::vec(access(3), 1..200),
        raises in proptest::collection::vec((0usize..4, 0u32..80), 0..20),
    ) {
        let (mut gic, r) = if gicv3 { v3(3) } else { v2(3) };
        for (i, a) in accesses.iter().enumerate() {
            let result = apply(&mut gic, &r, a);
            if a.write {
                prop_assert_eq!(result & !0b111, 0, "wake names a vCPU the domain lacks");
            }
            if let Some(&(v, intid)) = raises.get(i) {
                gic.raise(v.min(2), intid, r.as_slice());
            }
            for v in 0..3 {
                let deliverable = gic.deliverable(v, bits(&r, v));
                prop_assert_eq!(deliverable & !gic.enabled(v), 0);
                prop_assert_eq!(deliverable & !bits(&r, v), 0);
            }
            if gicv3 {
                let typer = gic.read_redistributor(0x2_0000 + 8, 8, r.as_slice());
                prop_assert_eq!(typer, 1 << 32 | 1 << 8);
            }
        }
        let disabled = gic.read_distributor(0, 0, 4, r.as_slice()) & 0b11 == 0;
        if disabled {
            for v in 0..3 {
                prop_assert_eq!(gic.deliverable(v, u64::MAX), 0);
            }
        }
    }

    /// A priority byte written reads back, through either width, for the
    /// vCPU that owns it, and no other vCPU's byte moves.
    #[test]
    fn priorities_round_trip(gicv3 in any::<bool>(), vcpu in 0usize..3, intid in 0u32..64, value in any::<u8>()) {
        let (mut gic, r) = if gicv3 { v3(3) } else { v2(3) };
        let private = intid < 32;
        if gicv3 && private {
            gic.write_redistributor(vcpu as u64 * 0x2_0000 + GICR_SGI + 0x400 + u64::from(intid), 1, value.into(), r.as_slice());
        } else {
            gic.write_distributor(vcpu, 0x400 + u64::from(intid), 1, value.into(), r.as_slice());
        }
        prop_assert_eq!(gic.priority(vcpu, intid), value);
        let word = if gicv3 && private {
            gic.read_redistributor(vcpu as u64 * 0x2_0000 + GICR_SGI + 0x400 + u64::from(intid & !3), 4, r.as_slice())
        } else {
            gic.read_distributor(vcpu, 0x400 + u64::from(intid & !3), 4, r.as_slice())
        };
        prop_assert_eq!((word >> ((intid % 4) * 8)) as u8, value);
        for other in (0..3).filter(|&o| o != vcpu) {
            prop_assert_eq!(gic.priority(other, intid), if private { 0 } else { value });
        }
    }

    /// Whatever one vCPU does to its own banked registers and redistributor,
    /// another vCPU's private state and pending bits stay as they were.
    #[test]
    fn one_vcpu_never_touches_anothers_private_state(
        gicv3 in any::<bool>(),
        accesses in proptest::collection::vec(access(3), 1..200),
    ) {
        let (mut gic, r) = if gicv3 { v3(3) } else { v2(3) };
        let before = gic.private(2).cloned();
        for a in accesses {
            // vCPU 0 or 1 through the distributor (banked) or its own
            // redistributor frames; SGIs and SPIs may legitimately reach vCPU 2.
            let vcpu = a.vcpu % 2;
            let offset = if a.redistributor { vcpu as u64 * 0x2_0000 + a.offset % 0x2_0000 } else { a.offset };
            let is_sgi = !gicv3 && !a.redistributor && (0xf00..0xf04).contains(&offset);
            let is_spi_pending = !a.redistributor && (0x204..0x208).contains(&(offset & !3));
            let is_route = !a.redistributor && ((0x6000..0x8000).contains(&offset) || (0x820..0x840).contains(&offset));
            if a.write && (is_sgi || is_spi_pending || is_route) {
                continue;
            }
            apply(&mut gic, &r, &Access { vcpu, offset, ..a });
        }
        prop_assert_eq!(gic.private(2).cloned(), before);
        prop_assert_eq!(bits(&r, 2), 0);
    }
}
