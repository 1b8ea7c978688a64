//! The MMU: W^X over the kernel image (writing text and executing data fault with precise
//! reports), boot-stack guard pages, RAM and device attributes. Also the fault that no test
//! catches (`kernel_fault`), which must produce a full report and a non-zero exit.
use kernel::arch::aarch64::boot::{boot_stack_layout, image_layout};
use kernel::arch::aarch64::exception::{ExceptionClass, FaultStatus, catch_fault};
use kernel::arch::cpu;
use kernel::mem::frames::FRAMES;
use kernel::mem::page_table::{Access, MemoryKind};
use kernel::testing::Suite;
use kernel::{boot, test_cases};

pub const SUITE: Suite = Suite {
    name: "mmu",
    cases: test_cases![
        writing_kernel_text_is_a_permission_fault,
        writing_rodata_is_a_permission_fault,
        executing_from_data_is_a_permission_fault,
        executing_from_free_ram_is_a_permission_fault,
        boot_stack_guard_page_is_unmapped,
        null_dereference_is_a_translation_fault,
        undefined_instruction_is_reported,
        image_sections_have_their_permissions,
        ram_and_devices_have_their_memory_types,
    ],
};

fn writing_kernel_text_is_a_permission_fault() {
    let target = writing_kernel_text_is_a_permission_fault as *const () as usize as *mut u32;
    // SAFETY: the write must fault (text is read-only); catch_fault skips it.
    let fault = catch_fault(|| unsafe { target.write_volatile(0xd503_201f) })
        .expect("writing kernel text did not fault");
    assert_eq!(fault.class, ExceptionClass::DataAbort);
    assert_eq!(fault.status, Some(FaultStatus::Permission { level: 3 }));
    assert!(fault.write);
    assert_eq!(fault.far, target as u64);
    assert_eq!(fault.core, cpu::core_index());
    let text = format_fault(&fault);
    assert!(
        text.starts_with("data abort, permission fault level 3, write"),
        "{text}"
    );
}

static READ_ONLY: [u64; 4] = [1, 2, 3, 4];

fn writing_rodata_is_a_permission_fault() {
    let target = core::hint::black_box(READ_ONLY.as_ptr()) as *mut u64;
    // SAFETY: must fault: rodata is mapped read-only.
    let fault = catch_fault(|| unsafe { target.write_volatile(9) }).expect("no fault");
    assert_eq!(fault.status, Some(FaultStatus::Permission { level: 3 }));
    assert_eq!(fault.far, target as u64);
    assert_eq!(READ_ONLY[0], 1);
}

/// `ret`, placed in writable data. Executing it must fault: data is never executable.
#[repr(align(4096))]
#[allow(dead_code)] // read only by the CPU, as instructions
struct CodeInData([u32; 4]);
static mut CODE_IN_DATA: CodeInData = CodeInData([0xd65f_03c0; 4]);

fn executing_from_data_is_a_permission_fault() {
    let address = (&raw mut CODE_IN_DATA) as usize;
    assert!(address >= image_layout().rodata_end && address < image_layout().data_end);
    // SAFETY: the call must fault at its first instruction; catch_fault returns to x30.
    let f: fn() = unsafe { core::mem::transmute::<usize, fn()>(address) };
    let fault = catch_fault(|| core::hint::black_box(f)()).expect("executing data did not fault");
    assert_eq!(fault.class, ExceptionClass::InstructionAbort);
    assert_eq!(fault.status, Some(FaultStatus::Permission { level: 3 }));
    assert_eq!(fault.far, address as u64);
    assert_eq!(fault.elr, address as u64);
    let text = format_fault(&fault);
    assert!(
        text.starts_with("instruction abort, permission fault level 3"),
        "{text}"
    );
}

fn executing_from_free_ram_is_a_permission_fault() {
    let frame = FRAMES.allocate(1).expect("a frame");
    let code = frame as *mut u32;
    // SAFETY: a frame we own, mapped read-write.
    unsafe { code.write_volatile(0xd65f_03c0) };
    // SAFETY: as above: the call must fault.
    let f: fn() = unsafe { core::mem::transmute::<u64, fn()>(frame) };
    let fault = catch_fault(|| core::hint::black_box(f)());
    FRAMES.free(frame, 1);
    let fault = fault.expect("executing free RAM did not fault");
    assert_eq!(fault.class, ExceptionClass::InstructionAbort);
    assert!(matches!(fault.status, Some(FaultStatus::Permission { .. })));
    assert_eq!(fault.far, frame);
}

fn boot_stack_guard_page_is_unmapped() {
    let (guard, stack) = boot_stack_layout(cpu::core_index());
    let here = &guard as *const _ as usize;
    assert!(
        stack.contains(&here),
        "this test runs on core 0's boot stack"
    );
    let target = (guard.end - 8) as *const u64;
    // SAFETY: must fault: the guard page is unmapped.
    let fault = catch_fault(|| unsafe {
        core::hint::black_box(target.read_volatile());
    })
    .expect("guard page is mapped");
    assert_eq!(fault.class, ExceptionClass::DataAbort);
    assert_eq!(fault.status, Some(FaultStatus::Translation { level: 3 }));
    assert!(!fault.write);
    assert_eq!(fault.far, target as u64);
    assert!(boot::translate(guard.start as u64).is_none());
}

fn null_dereference_is_a_translation_fault() {
    let null = core::hint::black_box(0usize) as *const u64;
    // SAFETY: must fault: page zero is never mapped.
    let fault = catch_fault(|| unsafe {
        core::hint::black_box(null.read_volatile());
    })
    .expect("null is mapped");
    assert!(matches!(
        fault.status,
        Some(FaultStatus::Translation { .. })
    ));
    assert_eq!(fault.far, 0);
}

fn undefined_instruction_is_reported() {
    // SAFETY: `udf` raises an undefined-instruction exception, which catch_fault skips.
    let fault = catch_fault(|| unsafe { core::arch::asm!("udf #0x42") }).expect("no exception");
    assert_eq!(fault.class, ExceptionClass::Unknown);
    assert_eq!(fault.class.name(), "undefined instruction");
}

fn image_sections_have_their_permissions() {
    let image = image_layout();
    let access = |address: usize| boot::translate(address as u64).map(|t| t.attrs.access);
    assert_eq!(access(image.start), Some(Access::ReadExecute));
    assert_eq!(access(image.text_end - 4), Some(Access::ReadExecute));
    assert_eq!(access(image.text_end), Some(Access::ReadOnly));
    assert_eq!(access(image.rodata_end), Some(Access::ReadWrite));
    assert_eq!(access(image.data_end - 8), Some(Access::ReadWrite));
    let (_, stack) = boot_stack_layout(0);
    assert_eq!(access(stack.start), Some(Access::ReadWrite));
}

fn ram_and_devices_have_their_memory_types() {
    let board = &boot::info().board;
    let uart = board.uart.unwrap();
    let t = boot::translate(uart.base).expect("UART mapped");
    assert_eq!(t.attrs.kind, MemoryKind::Device);
    assert_eq!(t.pa, uart.base);
    let frame = FRAMES.allocate(1).unwrap();
    let t = boot::translate(frame).expect("free RAM mapped");
    assert_eq!(
        (t.attrs.kind, t.attrs.access),
        (MemoryKind::Normal, Access::ReadWrite)
    );
    FRAMES.free(frame, 1);
    let dtb = boot::translate(boot::info().dtb.start).expect("DTB mapped");
    assert_eq!(dtb.attrs.access, Access::ReadOnly);
}

fn format_fault(fault: &kernel::arch::aarch64::exception::FaultInfo) -> heapless::String<128> {
    use core::fmt::Write;
    let mut text = heapless::String::new();
    write!(text, "{fault}").unwrap();
    text
}

/// Not a suite: a fault outside any catcher, which must stop the kernel with a full report
/// and a non-zero exit (xtask checks the output).
pub fn kernel_fault() -> ! {
    kernel::println!("kernel_fault: reading an unmapped address outside any test");
    let unmapped = core::hint::black_box(0x10usize) as *const u64;
    // SAFETY: deliberately faults; the kernel's fatal path never returns here.
    let value = unsafe { unmapped.read_volatile() };
    panic!("the read of {unmapped:p} returned {value:#x} instead of faulting");
}
