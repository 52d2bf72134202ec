"""Training: the one loop for fine-tuning and QAT (:mod:`.loop`) and ``edgeir finetune`` (:mod:`.finetune`)."""
