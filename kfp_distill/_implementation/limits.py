"""The contract's token limits, measured in the student's tokens: validate-dataset truncates to them, and
tune-student keeps what they let through."""

MAX_INPUT_TOKENS = 7_168
MAX_OUTPUT_TOKENS = 1_024
