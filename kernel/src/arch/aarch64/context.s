// Context switching between processes and the per-core kernel context (see context.rs).
//
// A saved context is a stack pointer plus what lies at it:
// - voluntary: the 160-byte callee-saved block pushed by context_switch (x19-x30, d8-d15),
//   the only registers a call must preserve under AAPCS64;
// - forced: the 800-byte exception frame vectors.s saves (every register, SP_EL0, ELR,
//   SPSR, FPCR, FPSR, q0-q31), copied onto the process's own stack when it was preempted.
// Processes run at EL1 on SP_EL0 (EL1t). The kernel context runs on SP_EL1 (EL1h); while a
// process runs, SP_EL1 rests at the kernel context's saved stack pointer, so exceptions
// taken from a process push their frames below the kernel context's, never on the process
// stack.

.equ VOLUNTARY_SIZE, 160
.equ FRAME_SIZE, 800
.equ KIND_PROCESS, 0
.equ KIND_KERNEL, 1
.equ KIND_FORCED, 2

.section .text.context, "ax"

// context_switch(save: *mut u64 [x0], sp: u64 [x1], kind: u64 [x2], kernel_sp: *const u64 [x3])
// Saves the caller as a voluntary context (its stack pointer into *save), then resumes the
// context (sp, kind). Returns when something resumes the saved context. IRQs masked.
.global context_switch
context_switch:
    sub     sp, sp, #VOLUNTARY_SIZE
    stp     x19, x20, [sp, #0]
    stp     x21, x22, [sp, #16]
    stp     x23, x24, [sp, #32]
    stp     x25, x26, [sp, #48]
    stp     x27, x28, [sp, #64]
    stp     x29, x30, [sp, #80]
    stp     d8, d9, [sp, #96]
    stp     d10, d11, [sp, #112]
    stp     d12, d13, [sp, #128]
    stp     d14, d15, [sp, #144]
    mov     x9, sp
    str     x9, [x0]
    // fall through

// context_resume(_ [x0], sp [x1], kind [x2], kernel_sp: *const u64 [x3]) -> !
// Resumes a saved context from anywhere at EL1 with IRQs masked: a kernel call, or an
// exception handler running on SP_EL1 (whose frames are abandoned: SP_EL1 is reset).
.global context_resume
context_resume:
    cmp     x2, #KIND_KERNEL
    b.eq    1f
    ldr     x9, [x3]
    msr     spsel, #1
    mov     sp, x9                      // SP_EL1 back to the kernel context's resting point
    cmp     x2, #KIND_FORCED
    b.eq    resume_forced
    msr     spsel, #0
    mov     sp, x1                      // SP_EL0: the process's own stack
    b       2f
1:  msr     spsel, #1
    mov     sp, x1
2:  ldp     x19, x20, [sp, #0]
    ldp     x21, x22, [sp, #16]
    ldp     x23, x24, [sp, #32]
    ldp     x25, x26, [sp, #48]
    ldp     x27, x28, [sp, #64]
    ldp     x29, x30, [sp, #80]
    ldp     d8, d9, [sp, #96]
    ldp     d10, d11, [sp, #112]
    ldp     d12, d13, [sp, #128]
    ldp     d14, d15, [sp, #144]
    add     sp, sp, #VOLUNTARY_SIZE
    ret

// The full frame at x1 (on the process stack); SP_EL1 already reset. ERET restores PSTATE
// (EL1t, the interrupted DAIF) and PC; SP_EL0 becomes the interrupted stack pointer, which
// lies above the frame, so the frame's memory is free stack again once it has been read.
resume_forced:
    mov     x30, x1
    // fall through

// restore_frame: load every register from the exception frame at x30 (the layout vectors.s
// saves) and ERET. Exceptions are masked, so the frame may lie below the stack pointer.
// Shared by the return from every exception and by the resumption of a preempted process.
.global restore_frame
restore_frame:
    add     x2, x30, #288
    ldp     q0, q1, [x2, #0]
    ldp     q2, q3, [x2, #32]
    ldp     q4, q5, [x2, #64]
    ldp     q6, q7, [x2, #96]
    ldp     q8, q9, [x2, #128]
    ldp     q10, q11, [x2, #160]
    ldp     q12, q13, [x2, #192]
    ldp     q14, q15, [x2, #224]
    ldp     q16, q17, [x2, #256]
    ldp     q18, q19, [x2, #288]
    ldp     q20, q21, [x2, #320]
    ldp     q22, q23, [x2, #352]
    ldp     q24, q25, [x2, #384]
    ldp     q26, q27, [x2, #416]
    ldp     q28, q29, [x2, #448]
    ldp     q30, q31, [x2, #480]
    ldp     x2, x3, [x30, #272]
    msr     fpcr, x2
    msr     fpsr, x3
    ldp     x2, x3, [x30, #256]
    msr     elr_el1, x2
    msr     spsr_el1, x3
    ldr     x1, [x30, #248]
    msr     sp_el0, x1
    ldp     x0, x1, [x30, #0]
    ldp     x2, x3, [x30, #16]
    ldp     x4, x5, [x30, #32]
    ldp     x6, x7, [x30, #48]
    ldp     x8, x9, [x30, #64]
    ldp     x10, x11, [x30, #80]
    ldp     x12, x13, [x30, #96]
    ldp     x14, x15, [x30, #112]
    ldp     x16, x17, [x30, #128]
    ldp     x18, x19, [x30, #144]
    ldp     x20, x21, [x30, #160]
    ldp     x22, x23, [x30, #176]
    ldp     x24, x25, [x30, #192]
    ldp     x26, x27, [x30, #208]
    ldp     x28, x29, [x30, #224]
    ldr     x30, [x30, #240]
    eret

// The first thing a new process runs (its initial voluntary block returns here):
// x19 = the argument for process_start, which never returns.
.global process_trampoline
process_trampoline:
    mov     x0, x19
    mov     x29, #0                     // end of the frame-pointer chain
    mov     x30, #0
    b       process_start

// call_on_kernel_stack(arg [x0], f [x1], kernel_sp: *const u64 [x2]) -> !
// Leaves the current (process) stack for the kernel context's resting SP_EL1 and calls
// f(arg), which must not return: used when a process ends, so its stack can be freed.
.global call_on_kernel_stack
call_on_kernel_stack:
    ldr     x9, [x2]
    msr     spsel, #1
    mov     sp, x9
    mov     x29, #0
    mov     x30, #0
    blr     x1
    brk     #0x1
