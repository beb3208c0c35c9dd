# Session 8: the v2 recipe again, uninterrupted, with seed 1: measures seed-to-seed spread of the
# shipped recipe (the shipped run was resumed three times with re-planned schedules). Runs from a
# snapshot worktree of the code (git worktree add /work/wt-train <commit>) so that work on main
# does not touch the running job. Re-run the same command to resume from runs/v2-167-seed1/last.pt.
cd /work/wt-train && nohup nice -n 19 /work/main/.venv/bin/python -m bot.main -v train \
  ../shared/data/faces/manifest.csv --out /work/main/runs/v2-167-seed1 \
  --input-size 167 --init /work/main/runs/imagenet-xception.safetensors --lr 3e-4 --head-lr-mult 10 \
  --warmup-steps 100 --epochs 7 --samples-per-epoch 5000 --save-every 50 --patience 4 \
  --cell-weight ffhq:real=3 --sbi 0.3 --sbi-mask landmarks --seed 1 --no-progress >> /work/main/runs/v2-167-seed1.log 2>&1 &
